"""The index store: instances, series, studies and completion, behind a small interface.

:class:`Store` is the interface the listener and the status view use; :class:`SqlStore` is the
SQLAlchemy Core implementation (SQLite in WAL mode now, PostgreSQL later with the same code).
Every write is one short transaction; a ``record_instance`` that returns has committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from dicom_listener import jobs as job_sql
from dicom_listener.records import (
    IndexOutcome,
    InstanceInfo,
    SeriesInfo,
    StoredInstance,
    StudyInfo,
)
from dicom_listener.schema import (
    database_engine,
    instances,
    replacements,
    series,
    series_rejections,
    studies,
)
from spinescreen.errors import StoreError


class Store(Protocol):
    """What the listener, the assembly and the status view need from the index."""

    def instance_digest(self, sop_instance_uid: str) -> str | None: ...
    def record_instance(self, stored: StoredInstance) -> IndexOutcome: ...
    def indexed_paths(self) -> set[str]: ...
    def due_studies(self, now: float) -> list[StudyInfo]: ...
    def series_of_study(self, study_uid: str) -> list[SeriesInfo]: ...
    def complete_study(
        self, study: StudyInfo, decisions: Mapping[str, str | None], model_version: str, now: float
    ) -> list[int]: ...
    def record_series_rejection(self, series_uid: str, reason: str) -> None: ...
    def series_instances(self, series_uid: str) -> list[InstanceInfo]: ...
    def list_studies(self) -> list[StudyInfo]: ...
    def list_series(self) -> list[SeriesInfo]: ...


class SqlStore:
    """:class:`Store` on SQLAlchemy Core. Thread-safe; writes are serialised in-process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, database: Path, url: str | None = None) -> SqlStore:
        try:
            return cls(database_engine(url, database))
        except SQLAlchemyError as exc:
            where = url or database
            raise StoreError(f"cannot open the index database {where}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One committed write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def instance_digest(self, sop_instance_uid: str) -> str | None:
        query = select(instances.c.sha256).where(instances.c.sop_instance_uid == sop_instance_uid)
        with self.read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def record_instance(self, stored: StoredInstance) -> IndexOutcome:
        with self.write() as conn:
            outcome = _upsert_instance(conn, stored)
            if outcome is not IndexOutcome.DUPLICATE:
                _upsert_series(conn, stored, outcome is IndexOutcome.NEW)
                _upsert_study(conn, stored)
            return outcome

    def indexed_paths(self) -> set[str]:
        with self.read() as conn:
            return set(conn.execute(select(instances.c.path)).scalars())

    def due_studies(self, now: float) -> list[StudyInfo]:
        query = select(studies).where(studies.c.state == "open", studies.c.due_at <= now)
        with self.read() as conn:
            return [_study(row) for row in conn.execute(query.order_by(studies.c.due_at))]

    def series_of_study(self, study_uid: str) -> list[SeriesInfo]:
        query = select(series).where(series.c.study_uid == study_uid)
        with self.read() as conn:
            return [_series(row) for row in conn.execute(query.order_by(series.c.series_number))]

    def complete_study(
        self, study: StudyInfo, decisions: Mapping[str, str | None], model_version: str, now: float
    ) -> list[int]:
        """Mark ``study`` complete and queue one job per changed series whose decision is None.

        ``decisions`` maps series UID -> rejection reason (None = routable). Nothing happens
        (returns []) when an instance arrived since ``study`` was read: its timer restarted.
        """
        with self.write() as conn:
            current = conn.execute(
                select(studies.c.state, studies.c.due_at).where(
                    studies.c.study_uid == study.study_uid
                )
            ).one_or_none()
            if current is None or current.state != "open" or current.due_at != study.due_at:
                return []
            job_ids = _route_changed_series(conn, study.study_uid, decisions, model_version, now)
            conn.execute(
                update(studies)
                .where(studies.c.study_uid == study.study_uid)
                .values(state="complete", completed_at=now, completions=studies.c.completions + 1)
            )
            return job_ids

    def record_series_rejection(self, series_uid: str, reason: str, now: float = 0.0) -> None:
        """Record why a series is not analysed (routing rules, input checks); shown by status."""
        with self.write() as conn:
            conn.execute(
                insert(series_rejections).values(
                    series_uid=series_uid, reason=reason, recorded_at=now or time.time()
                )
            )
            conn.execute(
                update(series)
                .where(series.c.series_uid == series_uid)
                .values(routable=False, rejection_reason=reason)
            )

    def series_instances(self, series_uid: str) -> list[InstanceInfo]:
        query = select(instances).where(instances.c.series_uid == series_uid)
        with self.read() as conn:
            return [
                InstanceInfo(
                    row.sop_instance_uid,
                    row.series_uid,
                    row.path,
                    row.sha256,
                    row.transfer_syntax_uid,
                )
                for row in conn.execute(query.order_by(instances.c.path))
            ]

    def list_studies(self) -> list[StudyInfo]:
        with self.read() as conn:
            rows = conn.execute(select(studies).order_by(studies.c.first_received_at))
            return [_study(row) for row in rows]

    def list_series(self) -> list[SeriesInfo]:
        with self.read() as conn:
            rows = conn.execute(select(series).order_by(series.c.study_uid, series.c.series_number))
            return [_series(row) for row in rows]

    def instance_count(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(instances)).scalar_one())


def _upsert_instance(conn: Connection, stored: StoredInstance) -> IndexOutcome:
    header = stored.header
    uid = header.sop_instance_uid
    old = conn.execute(
        select(instances.c.sha256).where(instances.c.sop_instance_uid == uid)
    ).scalar_one_or_none()
    values: dict[str, Any] = {
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
    if old is None:
        conn.execute(insert(instances).values(sop_instance_uid=uid, replacements=0, **values))
        return IndexOutcome.NEW
    if old == stored.sha256:
        return IndexOutcome.DUPLICATE
    conn.execute(
        update(instances)
        .where(instances.c.sop_instance_uid == uid)
        .values(replacements=instances.c.replacements + 1, **values)
    )
    conn.execute(
        insert(replacements).values(
            sop_instance_uid=uid,
            old_sha256=old,
            new_sha256=stored.sha256,
            replaced_at=stored.received_at,
        )
    )
    return IndexOutcome.REPLACED


def _upsert_series(conn: Connection, stored: StoredInstance, is_new: bool) -> None:
    header = stored.header
    where = series.c.series_uid == header.series_uid
    if conn.execute(select(series.c.series_uid).where(where)).first() is None:
        conn.execute(
            insert(series).values(
                series_uid=header.series_uid,
                study_uid=header.study_uid,
                modality=header.modality,
                sop_class_uid=header.sop_class_uid,
                image_type="\\".join(header.image_type),
                series_number=header.series_number,
                instance_count=1,
                changed=True,
            )
        )
        return
    count = series.c.instance_count + (1 if is_new else 0)
    conn.execute(update(series).where(where).values(instance_count=count, changed=True))


def _upsert_study(conn: Connection, stored: StoredInstance) -> None:
    uid = stored.header.study_uid
    due_at = stored.received_at + stored.quiet_period_s
    where = studies.c.study_uid == uid
    timing = {
        "state": "open",
        "calling_ae": stored.calling_ae,
        "last_instance_at": stored.received_at,
        "due_at": due_at,
    }
    if conn.execute(select(studies.c.study_uid).where(where)).first() is None:
        conn.execute(
            insert(studies).values(
                study_uid=uid, first_received_at=stored.received_at, completions=0, **timing
            )
        )
    else:
        conn.execute(update(studies).where(where).values(**timing))


def _route_changed_series(
    conn: Connection,
    study_uid: str,
    decisions: Mapping[str, str | None],
    model_version: str,
    now: float,
) -> list[int]:
    changed = conn.execute(
        select(series.c.series_uid).where(series.c.study_uid == study_uid, series.c.changed)
    ).scalars()
    job_ids = []
    for series_uid in list(changed):
        reason = decisions.get(series_uid, "series not seen by the router")
        if reason is None:
            job_ids.append(job_sql.enqueue(conn, study_uid, series_uid, model_version, now))
        conn.execute(
            update(series)
            .where(series.c.series_uid == series_uid)
            .values(changed=False, routable=reason is None, rejection_reason=reason)
        )
    return job_ids


def _study(row: Any) -> StudyInfo:
    return StudyInfo(
        row.study_uid,
        row.state,
        row.calling_ae,
        row.last_instance_at,
        row.due_at,
        row.completions,
    )


def _series(row: Any) -> SeriesInfo:
    return SeriesInfo(
        series_uid=row.series_uid,
        study_uid=row.study_uid,
        modality=row.modality,
        sop_class_uid=row.sop_class_uid,
        image_type=tuple(v for v in row.image_type.split("\\") if v),
        series_number=row.series_number,
        instance_count=row.instance_count,
        changed=bool(row.changed),
        routable=row.routable,
        rejection_reason=row.rejection_reason,
    )
