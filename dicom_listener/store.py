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
from dicom_listener.indexing import GroupCommit, record_instance
from dicom_listener.records import (
    IndexOutcome,
    InstanceInfo,
    SeriesInfo,
    StoredInstance,
    StudyInfo,
)
from dicom_listener.schema import (
    READ_ONLY,
    database_engine,
    instances,
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
        self._group_commit = GroupCommit(self._record_batch)

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
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            yield conn

    def instance_digest(self, sop_instance_uid: str) -> str | None:
        query = select(instances.c.sha256).where(instances.c.sop_instance_uid == sop_instance_uid)
        with self.read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def record_instance(self, stored: StoredInstance) -> IndexOutcome:
        """Index ``stored``; returns once its row is committed (group commit, see below)."""
        return self._group_commit.submit(stored)

    def _record_batch(self, batch: list[StoredInstance]) -> list[IndexOutcome]:
        with self.write() as conn:
            return [record_instance(conn, stored) for stored in batch]

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
