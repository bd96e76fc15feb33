"""Series routing: which series of a study is analysed, and why the others are not.

Pure functions over header summaries (``SeriesSummary``, built from headers read with
``stop_before_pixels``), so the service's ``StudyRouter`` (pipeline/service.py) can route
what the listener received.
Rules live in ``configs/routing.yaml`` (or ``analysis.routing_rules``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spinescreen.errors import ConfigError

log = logging.getLogger(__name__)

SHIPPED_RULES = Path(__file__).resolve().parents[1] / "configs" / "routing.yaml"


class ThicknessRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float = Field(0.3, ge=0)
    max: float = Field(5.0, gt=0)


class RoutingRules(BaseModel):
    """The conditions a series must meet (see configs/routing.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modalities: tuple[str, ...] = ("CT",)
    sop_class_uids: tuple[str, ...] = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1")
    image_type_required: tuple[str, ...] = ("ORIGINAL", "PRIMARY")
    image_type_forbidden: tuple[str, ...] = ("LOCALIZER", "DERIVED", "SECONDARY", "SCOUT")
    slice_thickness_mm: ThicknessRange = ThicknessRange()
    min_slices: int = Field(20, ge=3)
    min_coverage_mm: float = Field(30.0, ge=0)
    max_axial_tilt_deg: float = Field(30.0, ge=0, le=90)
    body_parts_forbidden: tuple[str, ...] = ()
    coverage_tie_fraction: float = Field(0.8, gt=0, le=1)


def load_rules(path: Path | None = None) -> RoutingRules:
    """Rules from ``path`` (default: the shipped configs/routing.yaml)."""
    path = path or SHIPPED_RULES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return RoutingRules.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"cannot read routing rules {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid routing rules in {path}: {exc}") from exc


@dataclass(frozen=True)
class SeriesSummary:
    """What routing needs to know about one series, from its headers."""

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...]
    slice_thickness_mm: float | None
    number_of_slices: int  # instances, or frames of a multi-frame instance
    slice_normal: tuple[float, float, float] | None  # LPS unit vector
    coverage_mm: float  # extent of slice positions along the normal
    body_part: str = ""
    description: str = ""
    files: tuple[Path, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class RoutingDecision:
    series_instance_uid: str
    accepted: bool
    reason: str  # "selected", "candidate, not the best: ..." or why rejected


def check_series(series: SeriesSummary, rules: RoutingRules) -> str | None:
    """The first rule the series breaks, as a reason string; None when it qualifies."""
    for check in _CHECKS:
        reason = check(series, rules)
        if reason:
            return reason
    return None


def route_study(
    series: Sequence[SeriesSummary], rules: RoutingRules
) -> tuple[SeriesSummary | None, tuple[RoutingDecision, ...]]:
    """The best qualifying series of one study, and a decision with a reason for every one."""
    reasons = {s.series_instance_uid: check_series(s, rules) for s in series}
    candidates = [s for s in series if reasons[s.series_instance_uid] is None]
    best = _best(candidates, rules)
    decisions = []
    for s in series:
        reason = reasons[s.series_instance_uid]
        if best is not None and s is best:
            decisions.append(RoutingDecision(s.series_instance_uid, True, "selected"))
        elif reason is None and best is not None:
            why = f"qualifies, but series {best.series_instance_uid} covers more or is thinner"
            decisions.append(RoutingDecision(s.series_instance_uid, False, why))
        else:
            decisions.append(RoutingDecision(s.series_instance_uid, False, reason or ""))
    for d in decisions:
        log.info("series %s: %s", d.series_instance_uid, d.reason)
    return best, tuple(decisions)


def _best(candidates: list[SeriesSummary], rules: RoutingRules) -> SeriesSummary | None:
    if not candidates:
        return None
    widest = max(c.coverage_mm for c in candidates)
    wide = [c for c in candidates if c.coverage_mm >= rules.coverage_tie_fraction * widest]
    return min(
        wide,
        key=lambda c: (c.slice_thickness_mm or math.inf, -c.coverage_mm, -c.number_of_slices),
    )


def _modality(s: SeriesSummary, r: RoutingRules) -> str | None:
    if s.modality.upper() not in r.modalities:
        return f"modality {s.modality or 'missing'} is not one of {', '.join(r.modalities)}"
    if s.sop_class_uid not in r.sop_class_uids:
        return f"SOP Class {s.sop_class_uid or 'missing'} is not a CT image storage class"
    return None


def _image_type(s: SeriesSummary, r: RoutingRules) -> str | None:
    values = {v.upper() for v in s.image_type}
    shown = "\\".join(s.image_type) or "missing"
    missing = [v for v in r.image_type_required if v not in values]
    if missing:
        return f"ImageType {shown} lacks {', '.join(missing)}"
    forbidden = [v for v in r.image_type_forbidden if v in values]
    if forbidden:
        return f"ImageType {shown} is {', '.join(forbidden)}"
    return None


def _thickness(s: SeriesSummary, r: RoutingRules) -> str | None:
    t, rng = s.slice_thickness_mm, r.slice_thickness_mm
    if t is None:
        return "SliceThickness is missing"
    if not rng.min <= t <= rng.max:
        return f"SliceThickness {t:g} mm outside {rng.min:g}-{rng.max:g} mm"
    return None


def _slices(s: SeriesSummary, r: RoutingRules) -> str | None:
    if s.number_of_slices < r.min_slices:
        return f"{s.number_of_slices} slices, fewer than {r.min_slices}"
    if s.coverage_mm < r.min_coverage_mm:
        return f"covers {s.coverage_mm:.1f} mm, less than {r.min_coverage_mm:g} mm"
    return None


def _orientation(s: SeriesSummary, r: RoutingRules) -> str | None:
    if s.slice_normal is None:
        return "no Image Orientation (Patient): geometry unknown"
    tilt = math.degrees(math.acos(min(1.0, abs(s.slice_normal[2]))))
    if tilt > r.max_axial_tilt_deg:
        return (
            f"not axial: slice normal {tilt:.0f} deg from head-feet (max {r.max_axial_tilt_deg:g})"
        )
    return None


def _body_part(s: SeriesSummary, r: RoutingRules) -> str | None:
    if s.body_part.upper() in r.body_parts_forbidden:
        return f"BodyPartExamined {s.body_part} does not show the thoracolumbar spine"
    return None


_CHECKS = (_modality, _image_type, _thickness, _slices, _orientation, _body_part)
