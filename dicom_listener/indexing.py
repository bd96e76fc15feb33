"""Indexing one received instance: instance, series and study rows in one transaction.

Statements are built once with bind parameters (SQLAlchemy caches their compiled form), and
the common path is four statements: look up the SOP Instance UID, insert it, update the
series, update the study (an INSERT follows only when the UPDATE found no row).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from dicom_listener.records import IndexOutcome, StoredInstance
from dicom_listener.schema import instances, replacements, series, studies

_FIND_DIGEST = select(instances.c.sha256).where(
    instances.c.sop_instance_uid == bindparam("sop_uid")
)
_INSERT_INSTANCE = insert(instances)
_REPLACE_INSTANCE = (
    update(instances)
    .where(instances.c.sop_instance_uid == bindparam("sop_uid"))
    .values(
        {
            "series_uid": bindparam("series_uid"),
            "study_uid": bindparam("study_uid"),
            "sop_class_uid": bindparam("sop_class_uid"),
            "transfer_syntax_uid": bindparam("transfer_syntax_uid"),
            "path": bindparam("path"),
            "size": bindparam("size"),
            "sha256": bindparam("sha256"),
            "calling_ae": bindparam("calling_ae"),
            "received_at": bindparam("received_at"),
            "replacements": instances.c.replacements + 1,
        }
    )
)
_INSERT_REPLACEMENT = insert(replacements)
_TOUCH_SERIES = (
    update(series)
    .where(series.c.series_uid == bindparam("series_key"))
    .values(instance_count=series.c.instance_count + bindparam("added"), changed=True)
)
_INSERT_SERIES = insert(series)
_TOUCH_STUDY = (
    update(studies)
    .where(studies.c.study_uid == bindparam("study_key"))
    .values(
        state="open",
        calling_ae=bindparam("ae"),
        last_instance_at=bindparam("at"),
        due_at=bindparam("due"),
    )
)
_INSERT_STUDY = insert(studies)


def record_instance(conn: Connection, stored: StoredInstance) -> IndexOutcome:
    """Index ``stored`` inside the caller's transaction."""
    outcome = _upsert_instance(conn, stored)
    if outcome is not IndexOutcome.DUPLICATE:
        _upsert_series(conn, stored, outcome is IndexOutcome.NEW)
        _upsert_study(conn, stored)
    return outcome


def _instance_values(stored: StoredInstance) -> dict[str, Any]:
    header = stored.header
    return {
        "series_uid": header.series_uid,
        "study_uid": header.study_uid,
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "path": stored.path,
        "size": stored.size,
        "sha256": stored.sha256,
        "calling_ae": stored.calling_ae,
        "received_at": stored.received_at,
    }


def _upsert_instance(conn: Connection, stored: StoredInstance) -> IndexOutcome:
    uid = stored.header.sop_instance_uid
    old = conn.execute(_FIND_DIGEST, {"sop_uid": uid}).scalar_one_or_none()
    values = _instance_values(stored)
    if old is None:
        conn.execute(_INSERT_INSTANCE, {"sop_instance_uid": uid, "replacements": 0, **values})
        return IndexOutcome.NEW
    if old == stored.sha256:
        return IndexOutcome.DUPLICATE
    conn.execute(_REPLACE_INSTANCE, {"sop_uid": uid, **values})
    conn.execute(
        _INSERT_REPLACEMENT,
        {
            "sop_instance_uid": uid,
            "old_sha256": old,
            "new_sha256": stored.sha256,
            "replaced_at": stored.received_at,
        },
    )
    return IndexOutcome.REPLACED


def _upsert_series(conn: Connection, stored: StoredInstance, is_new: bool) -> None:
    header = stored.header
    touched = conn.execute(
        _TOUCH_SERIES, {"series_key": header.series_uid, "added": 1 if is_new else 0}
    )
    if touched.rowcount:
        return
    conn.execute(
        _INSERT_SERIES,
        {
            "series_uid": header.series_uid,
            "study_uid": header.study_uid,
            "modality": header.modality,
            "sop_class_uid": header.sop_class_uid,
            "image_type": "\\".join(header.image_type),
            "series_number": header.series_number,
            "instance_count": 1,
            "changed": True,
        },
    )


def _upsert_study(conn: Connection, stored: StoredInstance) -> None:
    at = stored.received_at
    due = at + stored.quiet_period_s
    key = stored.header.study_uid
    params = {"study_key": key, "ae": stored.calling_ae, "at": at, "due": due}
    if conn.execute(_TOUCH_STUDY, params).rowcount:
        return
    conn.execute(
        _INSERT_STUDY,
        {
            "study_uid": key,
            "state": "open",
            "calling_ae": stored.calling_ae,
            "first_received_at": at,
            "last_instance_at": at,
            "due_at": due,
            "completions": 0,
        },
    )


class GroupCommit:
    """Group commit: records that arrive while a commit runs share the next transaction.

    Every caller still returns only after the transaction holding its own record committed
    (so an instance is never acknowledged before its row is durable); concurrent
    associations just share one fsync instead of queueing for one each. A batch that fails
    is retried record by record, so one bad record cannot fail its neighbours.
    """

    def __init__(self, commit: Callable[[list[StoredInstance]], list[IndexOutcome]]) -> None:
        self._commit = commit
        self._pending: list[tuple[StoredInstance, Future[IndexOutcome]]] = []
        self._pending_lock = threading.Lock()
        self._leader_lock = threading.Lock()

    def submit(self, stored: StoredInstance) -> IndexOutcome:
        future: Future[IndexOutcome] = Future()
        with self._pending_lock:
            self._pending.append((stored, future))
        with self._leader_lock:
            if not future.done():
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run(batch)
        return future.result()

    def _run(self, batch: list[tuple[StoredInstance, Future[IndexOutcome]]]) -> None:
        try:
            outcomes = self._commit([stored for stored, _ in batch])
        except Exception:
            if len(batch) == 1:
                batch[0][1].set_exception(sys.exc_info()[1] or RuntimeError("commit failed"))
                return
            for item in batch:
                self._run([item])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
