"""What a phantom is drawn from: the user's knobs (:class:`PhantomParams`) and level names.

Every knob left at ``None`` is drawn from the seed, so ``(seed, params)`` replays a phantom
exactly. :func:`parse_fracture` reads the CLI form ``LEVEL:GRADE:TYPE`` (``L1:2:wedge``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from spinescreen.errors import ConfigError

FieldOfView = Literal[
    "chest", "abdomen", "chest_abdomen_pelvis", "thoracolumbar", "partial", "random"
]
FIELDS_OF_VIEW: tuple[str, ...] = (
    "chest",
    "abdomen",
    "chest_abdomen_pelvis",
    "thoracolumbar",
    "partial",
)
MORPHOLOGIES: tuple[str, ...] = ("wedge", "biconcave", "crush")

# Presacral levels in cranio-caudal order; VerSe numbers (L6 = 25, T13 = 28, sacrum = 26).
CERVICAL = tuple(f"C{n}" for n in range(1, 8))
THORACIC = tuple(f"T{n}" for n in range(1, 13))
LUMBAR = tuple(f"L{n}" for n in range(1, 6))
# Transitional spines in the population: a 13th rib-bearing vertebra (T13) in about 2 %, a
# sixth lumbar (L6) in about 6 % (models.labelling prices naming them by the same figures).
T13_RATE = 0.02
L6_RATE = 0.06
VERSE_LABEL: dict[str, int] = {
    **{name: n + 1 for n, name in enumerate(CERVICAL + THORACIC + LUMBAR)},
    "L6": 25,
    "S": 26,
    "T13": 28,
}
FRACTURE_LEVELS: tuple[str, ...] = THORACIC[3:] + LUMBAR  # T4-L5, where VCF are graded
# Relative frequency of fractures per level: peaks at T7-T8 and T11-L2 (L1 > T12 > L2).
FRACTURE_LEVEL_WEIGHT: dict[str, float] = {
    "T4": 0.5, "T5": 0.8, "T6": 1.5, "T7": 3.0, "T8": 3.0, "T9": 1.5, "T10": 1.5,
    "T11": 3.5, "T12": 6.0, "L1": 7.0, "L2": 4.0, "L3": 2.0, "L4": 1.5, "L5": 1.0,
}  # fmt: skip


@dataclass(frozen=True)
class FractureRequest:
    """One requested fracture: level name, Genant grade 1-3 and morphology."""

    level: str
    grade: int
    morphology: str

    def __post_init__(self) -> None:
        if self.level not in FRACTURE_LEVELS:
            raise ConfigError(
                f"fracture level {self.level!r} is not one of {', '.join(FRACTURE_LEVELS)}: "
                "fractures are generated at T4-L5"
            )
        if self.grade not in (1, 2, 3):
            raise ConfigError(f"fracture grade {self.grade!r} must be 1, 2 or 3 (Genant)")
        if self.morphology not in MORPHOLOGIES:
            raise ConfigError(
                f"fracture morphology {self.morphology!r} must be one of {', '.join(MORPHOLOGIES)}"
            )


def parse_fracture(text: str) -> FractureRequest:
    """``"L1:2:wedge"`` -> FractureRequest; the error names the bad part."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].strip().isdigit():
        raise ConfigError(
            f"fracture {text!r} must read LEVEL:GRADE:TYPE, e.g. L1:2:wedge or T8:3:crush"
        )
    return FractureRequest(parts[0].strip().upper(), int(parts[1]), parts[2].strip().lower())


@dataclass(frozen=True)
class PhantomParams:
    """Knobs of one CT phantom; ``None`` means drawn from the seed.

    ``fractures=None`` draws fractures at realistic levels and rates; an empty list asks for
    a spine without fractures. ``fracture_count`` fixes how many are drawn (levels, grades and
    morphologies still drawn at realistic rates): training data rich in fractures, which are
    rare at realistic rates (about one vertebra in twenty). ``slice_count`` fixes the number
    of slices (the z extent then follows from the slice spacing, centred on the field of
    view).
    """

    mode: Literal["realistic", "randomized"] = "realistic"
    field_of_view: FieldOfView = "random"
    fractures: list[FractureRequest] | None = None
    fracture_count: int | None = None  # None: 0-3 drawn at realistic rates
    slice_thickness_mm: float | None = None  # 0.5-5 mm; slice spacing equals thickness
    pixel_spacing_mm: float | None = None  # 0.5-1 mm in-plane
    matrix: int = 512
    slice_count: int | None = None
    center_level: str | None = None  # centre the field of view on this vertebra (e.g. "L1")
    kernel: Literal["soft", "sharp"] | None = None
    noise_hu: float | None = None  # noise SD in soft tissue, HU
    contrast: bool | None = None  # intravenous contrast (bright aorta, kidneys)
    trabecular_hu: float | None = None  # subject's L1 trabecular bone density, HU
    confounders: bool = True  # allow Schmorl nodes, osteophytes, sclerosis, disc narrowing
    variants: bool = True  # allow 11/13 rib pairs, T13, L6 (transitional vertebrae)
    # share of spines with a T13 / an L6 (None: T13_RATE / L6_RATE, as in the population);
    # training data rich in them asks a network to name levels from the ribs, not by count
    # alone (what 2400 CPU steps of it taught: docs/training-history.md)
    t13_rate: float | None = None
    l6_rate: float | None = None
    streaks: bool = True  # beam-hardening-like streaks near dense bone

    def __post_init__(self) -> None:
        if self.mode not in ("realistic", "randomized"):
            raise ConfigError(f"mode {self.mode!r} must be 'realistic' or 'randomized'")
        if self.field_of_view not in (*FIELDS_OF_VIEW, "random"):
            raise ConfigError(
                f"field_of_view {self.field_of_view!r} must be one of "
                f"{', '.join(FIELDS_OF_VIEW)} or 'random'"
            )
        if not 32 <= self.matrix <= 1024:
            raise ConfigError(f"matrix {self.matrix} must lie in 32-1024 (512 is usual)")
        _check_range("slice_thickness_mm", self.slice_thickness_mm, 0.3, 10.0)
        _check_range("pixel_spacing_mm", self.pixel_spacing_mm, 0.2, 5.0)
        if self.slice_count is not None and not 4 <= self.slice_count <= 2000:
            raise ConfigError(f"slice_count {self.slice_count} must lie in 4-2000")
        if self.center_level is not None and self.center_level not in VERSE_LABEL:
            raise ConfigError(
                f"center_level {self.center_level!r} is not a vertebra name such as T12 or L1"
            )
        if self.fracture_count is not None:
            if self.fractures is not None:
                raise ConfigError(
                    "give either fractures (the exact list) or fracture_count (how many to "
                    "draw), not both"
                )
            if not 0 <= self.fracture_count <= 8:
                raise ConfigError(f"fracture_count {self.fracture_count} must lie in 0-8")
        _check_range("t13_rate", self.t13_rate, 0.0, 1.0)
        _check_range("l6_rate", self.l6_rate, 0.0, 1.0)
        rates = (self.t13_rate or 0.0) + (self.l6_rate or 0.0)
        if rates > 1.0:
            raise ConfigError(
                f"t13_rate + l6_rate = {rates:g}: a spine has a T13 or an L6, not both; "
                "the two shares must add up to at most 1"
            )
        if not self.variants and (self.t13_rate or self.l6_rate):
            raise ConfigError(
                "t13_rate and l6_rate need variants: true (variants: false draws no T13 or L6)"
            )
        levels = [f.level for f in self.fractures or []]
        if len(levels) != len(set(levels)):
            raise ConfigError(f"fracture levels {levels} repeat a level; give each level once")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{name} {value} must lie in {low}-{high} mm")
