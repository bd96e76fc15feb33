"""The persistent job queue: one job per routable series of a complete study.

States: ``queued`` (ready), ``running`` (leased by a worker), ``done``, ``failed`` (waiting for
its backoff before the next attempt) and ``dead`` (dead-lettered after ``max_attempts``).
A worker claims a job with a lease and renews it with heartbeats; a lease that expires (the
worker died) returns the job to ``queued``. The idempotency key is (study, series, model
version); a study that reopens and completes again adds a new revision that supersedes the
earlier job (a still-queued job is reused instead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, insert, select, update

from dicom_listener.schema import attempts, jobs

if TYPE_CHECKING:
    from dicom_listener.store import SqlStore


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


@dataclass(frozen=True)
class Job:
    """A claimed (or listed) job: analyse ``series_uid`` of ``study_uid`` with a model version."""

    id: int
    study_uid: str
    series_uid: str
    model_version: str
    revision: int
    state: JobState
    attempts: int
    worker_id: str | None
    lease_until: float | None
    superseded_by: int | None = None
    last_error: str | None = None
    result_ref: str | None = None


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before the next try after ``attempt`` failed tries: base, 2 base, 4 base... <= max."""
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


def enqueue(conn: Connection, study: str, series: str, model_version: str, now: float) -> int:
    """Queue (study, series, model_version) inside the caller's transaction; the job id."""
    key = and_(
        jobs.c.study_uid == study,
        jobs.c.series_uid == series,
        jobs.c.model_version == model_version,
        jobs.c.superseded_by.is_(None),
    )
    latest = conn.execute(select(jobs).where(key).order_by(jobs.c.revision.desc())).first()
    if latest is not None and latest.state == JobState.QUEUED:
        conn.execute(update(jobs).where(jobs.c.id == latest.id).values(updated_at=now))
        return int(latest.id)
    revision = 1 if latest is None else latest.revision + 1
    result = conn.execute(
        insert(jobs).values(
            study_uid=study,
            series_uid=series,
            model_version=model_version,
            revision=revision,
            state=JobState.QUEUED,
            attempts=0,
            not_before=now,
            created_at=now,
            updated_at=now,
        )
    )
    new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    if latest is not None:
        conn.execute(update(jobs).where(jobs.c.id == latest.id).values(superseded_by=new_id))
    return int(new_id)


class JobQueue:
    """The API workers use: claim, heartbeat, complete, fail."""

    def __init__(
        self,
        store: SqlStore,
        max_attempts: int = 5,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 3600.0,
    ) -> None:
        self._store = store
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    def claim(self, worker_id: str, lease_s: float, now: float | None = None) -> Job | None:
        """Lease the oldest ready job to ``worker_id``, or None when nothing is ready."""
        now = time.time() if now is None else now
        ready = and_(
            jobs.c.state.in_([JobState.QUEUED, JobState.FAILED]),
            jobs.c.not_before <= now,
            jobs.c.superseded_by.is_(None),
        )
        with self._store.write() as conn:
            _expire_leases(conn, now, self.max_attempts)
            query = select(jobs).where(ready).order_by(jobs.c.not_before, jobs.c.id).limit(1)
            row = conn.execute(query.with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            values = {
                "state": JobState.RUNNING,
                "attempts": row.attempts + 1,
                "worker_id": worker_id,
                "lease_until": now + lease_s,
                "updated_at": now,
            }
            conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values))
            conn.execute(
                insert(attempts).values(
                    job_id=row.id, attempt=row.attempts + 1, worker_id=worker_id, started_at=now
                )
            )
            return _job({**row._asdict(), **values})

    def heartbeat(self, job: Job, lease_s: float, now: float | None = None) -> bool:
        """Extend the lease; False when the worker lost it (expired and given to another)."""
        now = time.time() if now is None else now
        with self._store.write() as conn:
            result = conn.execute(
                update(jobs).where(_held_by(job)).values(lease_until=now + lease_s, updated_at=now)
            )
            return bool(result.rowcount)

    def complete(self, job: Job, result_ref: str, now: float | None = None) -> bool:
        """Mark the job done with a reference to its result; False when the lease was lost."""
        now = time.time() if now is None else now
        with self._store.write() as conn:
            result = conn.execute(
                update(jobs)
                .where(_held_by(job))
                .values(
                    state=JobState.DONE, result_ref=result_ref, lease_until=None, updated_at=now
                )
            )
            _close_attempt(conn, job, now, "done", None)
            return bool(result.rowcount)

    def fail(self, job: Job, reason: str, now: float | None = None) -> JobState | None:
        """Record a failed attempt: retry after a backoff, or dead-letter after max_attempts."""
        now = time.time() if now is None else now
        dead = job.attempts >= self.max_attempts
        state = JobState.DEAD if dead else JobState.FAILED
        delay = 0.0 if dead else backoff_s(job.attempts, self.backoff_base_s, self.backoff_max_s)
        with self._store.write() as conn:
            result = conn.execute(
                update(jobs)
                .where(_held_by(job))
                .values(
                    state=state,
                    last_error=reason,
                    not_before=now + delay,
                    lease_until=None,
                    updated_at=now,
                )
            )
            _close_attempt(conn, job, now, "failed", reason)
            return state if result.rowcount else None

    def requeue_expired(self, now: float | None = None) -> int:
        """Return running jobs whose lease expired to ``queued`` (or ``dead``); how many."""
        now = time.time() if now is None else now
        with self._store.write() as conn:
            return _expire_leases(conn, now, self.max_attempts)

    def get(self, job_id: int) -> Job | None:
        with self._store.read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            return None if row is None else _job(row._asdict())

    def list_jobs(self) -> list[Job]:
        with self._store.read() as conn:
            return [_job(r._asdict()) for r in conn.execute(select(jobs).order_by(jobs.c.id))]


def _held_by(job: Job) -> Any:
    return and_(
        jobs.c.id == job.id, jobs.c.state == JobState.RUNNING, jobs.c.worker_id == job.worker_id
    )


def _expire_leases(conn: Connection, now: float, max_attempts: int) -> int:
    expired = and_(jobs.c.state == JobState.RUNNING, jobs.c.lease_until < now)
    rows = conn.execute(select(jobs.c.id, jobs.c.attempts).where(expired)).all()
    for row in rows:
        state = JobState.DEAD if row.attempts >= max_attempts else JobState.QUEUED
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(
                state=state,
                lease_until=None,
                not_before=now,
                last_error="lease expired (worker died or stalled)",
                updated_at=now,
            )
        )
        conn.execute(
            update(attempts)
            .where(attempts.c.job_id == row.id, attempts.c.ended_at.is_(None))
            .values(ended_at=now, outcome="expired", reason="lease expired")
        )
    return len(rows)


def _close_attempt(
    conn: Connection, job: Job, now: float, outcome: str, reason: str | None
) -> None:
    conn.execute(
        update(attempts)
        .where(
            attempts.c.job_id == job.id,
            attempts.c.attempt == job.attempts,
            attempts.c.ended_at.is_(None),
        )
        .values(ended_at=now, outcome=outcome, reason=reason)
    )


def _job(row: dict[str, Any]) -> Job:
    return Job(
        id=int(row["id"]),
        study_uid=row["study_uid"],
        series_uid=row["series_uid"],
        model_version=row["model_version"],
        revision=int(row["revision"]),
        state=JobState(row["state"]),
        attempts=int(row["attempts"]),
        worker_id=row["worker_id"],
        lease_until=row["lease_until"],
        superseded_by=row["superseded_by"],
        last_error=row["last_error"],
        result_ref=row["result_ref"],
    )
