"""Which series of a complete study become jobs: a pluggable :class:`SeriesRouter`.

The analysis stage replaces :func:`default_router` with its YAML routing rules; the listener
only calls the router and records its reasons.
"""

from __future__ import annotations

from typing import Protocol

from dicom_listener.instance import is_image_storage
from dicom_listener.records import SeriesInfo

ROUTED_MODALITIES = frozenset({"CT", "DX", "CR"})
EXCLUDED_IMAGE_TYPES = frozenset({"LOCALIZER", "DERIVED"})


class SeriesRouter(Protocol):
    """Decides whether a series is analysed: None to route it, else the rejection reason."""

    def __call__(self, series: SeriesInfo) -> str | None: ...


def default_router(series: SeriesInfo) -> str | None:
    """Placeholder rules until the analysis issue: CT, DX and CR original image series."""
    if series.modality not in ROUTED_MODALITIES:
        return f"modality {series.modality or '(empty)'} is not routed (CT, DX, CR are)"
    if not is_image_storage(series.sop_class_uid):
        return f"SOP class {series.sop_class_uid} is not an image storage class"
    excluded = EXCLUDED_IMAGE_TYPES.intersection(series.image_type)
    if excluded:
        return f"image type {'/'.join(sorted(excluded))} is not analysed"
    return None
