"""The persistent outbox: result objects waiting for delivery, one row per object and destination.

States: ``pending`` (waiting until ``next_attempt_at``), ``sending`` (claimed by a delivery
worker, with a lease), ``done`` and ``dead`` (undelivered ``give_up_after_s`` after it was
queued: the dead letter ``spinescreen status`` shows, requeued with ``--retry-dead``).

Durability: :meth:`Outbox.submit` first copies each file into ``<data_dir>/results/<study>/``
(temporary name, fsync, rename, directory fsync), then commits the rows; a restart finds both.
The key is (SOP Instance UID, destination): submitting the same object twice adds nothing.

Exactly once, as far as DICOM allows: a row is ``done`` only after the destination answered
success. A process that dies between the destination's answer and the commit leaves the row
``sending``; it is sent again after the restart (:meth:`Outbox.requeue_interrupted`) or when its
lease passes. The re-send carries the same SOP Instance UID, which a PACS stores once (Orthanc,
like most archives, keeps or overwrites the same instance instead of adding a second one).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, or_, select, update

from dicom_listener.jobs import backoff_s
from dicom_listener.schema import deliveries
from dicom_listener.settings import FOLDER_DESTINATION, DeliverySettings
from dicom_listener.spool import safe_name
from spinescreen.durable import atomic_file
from spinescreen.errors import DeliveryError

if TYPE_CHECKING:
    from dicom_listener.store import SqlStore

logger = logging.getLogger(__name__)

RESULTS_DIR = "results"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    DEAD = "dead"


@dataclass(frozen=True)
class ResultObject:
    """What the outbox needs to know of one DICOM result file."""

    study_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str

    @property
    def file_name(self) -> str:
        return f"{self.modality}_{self.sop_instance_uid}.dcm"


@dataclass(frozen=True)
class Delivery:
    """One outbox row: ``path`` is absolute (inside the results folder)."""

    id: int
    study_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    destination: str
    path: Path
    job_id: int | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    queued_at: float
    last_error: str | None


def read_result_object(path: Path) -> ResultObject:
    """The identifying header of a result file; DeliveryError when it is not usable DICOM."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path, stop_before_pixels=True)
    except (OSError, InvalidDicomError) as exc:
        raise DeliveryError(
            f"cannot read result object {path}: {exc}; is it a DICOM file?"
        ) from exc
    values = {k: str(ds.get(k, "")) for k in ("SOPInstanceUID", "SOPClassUID", "Modality")}
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise DeliveryError(f"result object {path} lacks {', '.join(missing)}; cannot deliver it")
    return ResultObject(
        str(ds.get("StudyInstanceUID", "")),
        values["SOPInstanceUID"],
        values["SOPClassUID"],
        values["Modality"],
    )


def durable_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically: temporary file, fsync, rename, directory fsync."""
    with source.open("rb") as reader, atomic_file(target) as writer:
        shutil.copyfileobj(reader, writer)


class Outbox:
    """Submit result files for delivery; the state machine the :class:`DeliveryWorker` drives."""

    def __init__(self, store: SqlStore, settings: DeliverySettings, data_dir: Path) -> None:
        self.store = store
        self.settings = settings
        self.results_dir = data_dir / RESULTS_DIR

    @property
    def destinations(self) -> list[str]:
        """Names of the configured destinations, the folder first when enabled."""
        names = [FOLDER_DESTINATION] if self.settings.folder else []
        return names + [d.name for d in self.settings.destinations]

    def submit(self, study_uid: str, files: Sequence[Path], job_id: int | None = None) -> list[int]:
        """Queue every file for every destination; the row ids (existing rows for re-submits)."""
        now = time.time()
        staged = [self._stage(study_uid, Path(f)) for f in files]
        ids: list[int] = []
        with self.store.write() as conn:
            for obj, relative in staged:
                for destination in self.destinations:
                    ids.append(_insert_once(conn, obj, destination, relative, job_id, now))
        logger.info(
            "outbox: study %s, %d object(s) queued for %s",
            study_uid,
            len(staged),
            self.destinations,
        )
        return ids

    def _stage(self, study_uid: str, source: Path) -> tuple[ResultObject, str]:
        obj = read_result_object(source)
        if obj.study_uid and obj.study_uid != study_uid:
            raise DeliveryError(
                f"result object {source} belongs to study {obj.study_uid}, not {study_uid}; "
                "submit it with its own study"
            )
        relative = f"{safe_name(study_uid)}/{obj.file_name}"
        target = self.results_dir / relative
        if source.resolve() != target.resolve():
            try:
                durable_copy(source, target)
            except OSError as exc:
                raise DeliveryError(
                    f"cannot keep result object {source} in {target.parent}: {exc.strerror}; "
                    "check free space and permissions of the data directory"
                ) from exc
        return ResultObject(study_uid, obj.sop_instance_uid, obj.sop_class_uid, obj.modality), (
            relative
        )

    def requeue_interrupted(self) -> int:
        """Return every ``sending`` row to ``pending`` (after a restart); how many there were."""
        with self.store.write() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.state == DeliveryState.SENDING)
                .values(state=DeliveryState.PENDING, lease_until=None, updated_at=time.time())
            )
        if result.rowcount:
            logger.warning(
                "outbox: %d interrupted delivery(ies) will be sent again", result.rowcount
            )
        return int(result.rowcount)

    def claim_due(
        self, lease_s: float, now: float | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Claim due rows (pending and due, or sending with a passed lease) as ``sending``."""
        now = time.time() if now is None else now
        due = or_(
            and_(deliveries.c.state == DeliveryState.PENDING, deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.state == DeliveryState.SENDING, deliveries.c.lease_until < now),
        )
        query = (
            select(deliveries).where(due).order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        )
        with self.store.write() as conn:
            rows = conn.execute(query.limit(limit).with_for_update(skip_locked=True)).all()
            if rows:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([r.id for r in rows]))
                    .values(state=DeliveryState.SENDING, lease_until=now + lease_s, updated_at=now)
                )
        return [self._delivery(r._asdict(), DeliveryState.SENDING) for r in rows]

    def mark_done(self, delivery: Delivery, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.store.write() as conn:
            conn.execute(
                update(deliveries)
                .where(_claimed(delivery))
                .values(
                    state=DeliveryState.DONE,
                    attempts=deliveries.c.attempts + 1,
                    delivered_at=now,
                    lease_until=None,
                    last_error=None,
                    updated_at=now,
                )
            )

    def mark_failed(
        self, delivery: Delivery, error: str, now: float | None = None
    ) -> DeliveryState:
        """Record a failed attempt: back to ``pending`` after the backoff, or ``dead``."""
        now = time.time() if now is None else now
        attempts = delivery.attempts + 1
        retry_at = now + backoff_s(attempts, self.settings.retry_base_s, self.settings.retry_max_s)
        gave_up = now - delivery.queued_at >= self.settings.give_up_after_s
        state = DeliveryState.DEAD if gave_up else DeliveryState.PENDING
        with self.store.write() as conn:
            conn.execute(
                update(deliveries)
                .where(_claimed(delivery))
                .values(
                    state=state,
                    attempts=attempts,
                    next_attempt_at=retry_at,
                    lease_until=None,
                    last_error=error[:2000],
                    updated_at=now,
                )
            )
        if gave_up:
            logger.error(
                "outbox: %s %s to %s dead after %d attempt(s): %s",
                delivery.modality,
                delivery.sop_instance_uid,
                delivery.destination,
                attempts,
                error,
            )
        return state

    def retry_dead(self, now: float | None = None) -> int:
        """Requeue every dead row with a fresh give-up clock; how many."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.state == DeliveryState.DEAD)
                .values(
                    state=DeliveryState.PENDING, next_attempt_at=now, queued_at=now, updated_at=now
                )
            )
        return int(result.rowcount)

    def deliveries(self, state: DeliveryState | None = None) -> list[Delivery]:
        """Every row (or those in ``state``), oldest first."""
        query = select(deliveries).order_by(deliveries.c.id)
        if state is not None:
            query = query.where(deliveries.c.state == state)
        with self.store.read() as conn:
            return [self._delivery(r._asdict()) for r in conn.execute(query)]

    def counts(self) -> dict[tuple[str, DeliveryState], int]:
        """(destination, state) -> number of rows."""
        from sqlalchemy import func

        query = select(deliveries.c.destination, deliveries.c.state, func.count()).group_by(
            deliveries.c.destination, deliveries.c.state
        )
        with self.store.read() as conn:
            return {(d, DeliveryState(s)): int(n) for d, s, n in conn.execute(query)}

    def _delivery(self, row: dict[str, Any], state: DeliveryState | None = None) -> Delivery:
        return Delivery(
            id=int(row["id"]),
            study_uid=row["study_uid"],
            sop_instance_uid=row["sop_instance_uid"],
            sop_class_uid=row["sop_class_uid"],
            modality=row["modality"],
            destination=row["destination"],
            path=self.results_dir / row["path"],
            job_id=row["job_id"],
            state=state or DeliveryState(row["state"]),
            attempts=int(row["attempts"]),
            next_attempt_at=float(row["next_attempt_at"]),
            queued_at=float(row["queued_at"]),
            last_error=row["last_error"],
        )


def _claimed(delivery: Delivery) -> Any:
    """The row of ``delivery`` while still claimed (a late answer cannot undo a later outcome)."""
    return and_(deliveries.c.id == delivery.id, deliveries.c.state == DeliveryState.SENDING)


def _insert_once(
    conn: Any, obj: ResultObject, destination: str, relative: str, job_id: int | None, now: float
) -> int:
    key = and_(
        deliveries.c.sop_instance_uid == obj.sop_instance_uid,
        deliveries.c.destination == destination,
    )
    existing = conn.execute(select(deliveries.c.id).where(key)).scalar_one_or_none()
    if existing is not None:
        return int(existing)
    result = conn.execute(
        insert(deliveries).values(
            study_uid=obj.study_uid,
            sop_instance_uid=obj.sop_instance_uid,
            sop_class_uid=obj.sop_class_uid,
            modality=obj.modality,
            destination=destination,
            path=relative,
            job_id=job_id,
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            queued_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])
