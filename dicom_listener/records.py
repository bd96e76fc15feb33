"""Typed records handed between the receiver, the spool, the index and the status view."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class InstanceHeader:
    """The few attributes of a received dataset that the listener needs (UIDs, routing)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    modality: str = ""
    image_type: tuple[str, ...] = ()
    series_number: int | None = None


@dataclass(frozen=True)
class StoredInstance:
    """An instance whose bytes are durable in the spool, ready to be indexed."""

    header: InstanceHeader
    path: str  # relative to the spool root
    size: int
    sha256: str
    calling_ae: str
    received_at: float
    quiet_period_s: float


class IndexOutcome(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"  # same SOP Instance UID, same bytes: nothing changed
    REPLACED = "replaced"  # same SOP Instance UID, different bytes: the newer one is kept


@dataclass(frozen=True)
class SeriesInfo:
    """A series as the index knows it; what a :class:`SeriesRouter` decides on."""

    series_uid: str
    study_uid: str
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...]
    series_number: int | None
    instance_count: int
    changed: bool
    routable: bool | None
    rejection_reason: str | None


@dataclass(frozen=True)
class StudyInfo:
    study_uid: str
    state: str  # open | complete
    calling_ae: str
    last_instance_at: float
    due_at: float
    completions: int


@dataclass(frozen=True)
class InstanceInfo:
    sop_instance_uid: str
    series_uid: str
    path: str
    sha256: str
    transfer_syntax_uid: str
