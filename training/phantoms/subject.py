"""Draw one subject and one acquisition from the seed: every random choice is made here or
in the modules it calls, in a fixed order, so ``(seed, params)`` replays bit for bit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from training.phantoms.anatomy import (
    Curvature,
    LevelShape,
    draw_curvature,
    level_sequence,
    level_shape,
)
from training.phantoms.fractures import (
    draw_confounders,
    draw_fractures,
    draw_height_loss,
    draw_schmorl,
    fracture_body,
    keep_normal,
)
from training.phantoms.params import (
    FIELDS_OF_VIEW,
    FRACTURE_LEVELS,
    L6_RATE,
    T13_RATE,
    FractureRequest,
    PhantomParams,
)
from training.phantoms.vertebral_body import BodyModel

SLICE_THICKNESSES = (0.5, 0.625, 1.0, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)


@dataclass(frozen=True)
class Acquisition:
    field_of_view: str
    slice_thickness_mm: float
    pixel_spacing_mm: float
    matrix: int
    kernel: str
    noise_hu: float
    contrast: bool
    contrast_phase: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "field_of_view": self.field_of_view,
            "slice_thickness_mm": self.slice_thickness_mm,
            "slice_spacing_mm": self.slice_thickness_mm,
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "matrix": self.matrix,
            "kernel": self.kernel,
            "noise_hu": round(self.noise_hu, 2),
            "contrast": self.contrast,
            "contrast_phase": self.contrast_phase,
        }


def draw_acquisition(rng: np.random.Generator, p: PhantomParams) -> Acquisition:
    fov = p.field_of_view if p.field_of_view != "random" else str(rng.choice(FIELDS_OF_VIEW))
    thickness = p.slice_thickness_mm or float(rng.choice(SLICE_THICKNESSES))
    spacing = p.pixel_spacing_mm or float(round(rng.uniform(0.5, 1.0), 3))
    kernel = p.kernel or str(rng.choice(["soft", "soft", "sharp"]))
    base = float(rng.uniform(8.0, 35.0))
    noise = p.noise_hu if p.noise_hu is not None else base * (2.5 if kernel == "sharp" else 1.0)
    noise *= 1.0 if p.noise_hu is not None else float(np.sqrt(1.0 / max(thickness, 0.5)))
    contrast = p.contrast if p.contrast is not None else bool(rng.random() < 0.6)
    phase = str(rng.choice(["portal_venous", "arterial"])) if contrast else "none"
    return Acquisition(fov, thickness, spacing, p.matrix, kernel, noise, contrast, phase)


@dataclass(frozen=True)
class Subject:
    age: float
    habitus: float
    size: float
    trabecular_hu: float
    curvature: Curvature
    shapes: list[LevelShape]  # C1..L5 order (with T13 / L6 when present), placement heights
    bodies: dict[str, BodyModel]
    expected_posterior: dict[str, float]
    morphology: dict[str, str]
    confounders: dict[str, list[str]]
    trabecular: dict[str, float]
    rib_scale: dict[str, float]  # reach of each rib pair, 0 = no rib
    fractures: list[FractureRequest]


def bmd_class(trabecular_hu: float) -> str:
    """Pickhardt 2013 thresholds at L1: > 160 HU normal, 110-160 osteopenia, < 110 osteoporosis."""
    if trabecular_hu > 160.0:
        return "normal"
    return "osteopenia" if trabecular_hu >= 110.0 else "osteoporosis"


def draw_subject(rng: np.random.Generator, p: PhantomParams) -> Subject:
    age = float(rng.uniform(40.0, 92.0))
    habitus = float(rng.uniform(0.85, 1.3))
    size = float(rng.uniform(0.9, 1.1))
    levels = level_sequence(
        rng,
        p.variants,
        T13_RATE if p.t13_rate is None else p.t13_rate,
        L6_RATE if p.l6_rate is None else p.l6_rate,
    )
    shapes = [level_shape(name, index, size, rng) for name, index in levels]
    present = {s.level for s in shapes}
    requests = (
        p.fractures if p.fractures is not None else draw_fractures(rng, present, p.fracture_count)
    )
    requests = [f for f in requests if f.level in present]  # T4-L5 are always present
    hu = 226.0 - 2.5 * (age - 25.0) + 30.0 * float(rng.standard_normal()) - 15.0 * len(requests)
    hu = float(np.clip(hu, 40.0, 280.0)) if p.trabecular_hu is None else p.trabecular_hu
    confounders = {
        s.level: (draw_confounders(rng, s.level, age) if p.confounders else []) for s in shapes
    }
    for f in requests:
        confounders[f.level] = [c for c in confounders[f.level] if c == "osteophytes"]
    shapes = [_narrow_disc(s, confounders[s.level], rng) for s in shapes]
    bodies, expected, morph = _bodies(rng, shapes, requests, confounders)
    placement = [_placement_shape(s, bodies[s.level]) for s in shapes]
    offsets = {"C": 15.0, "T": 10.0, "L": -5.0}
    trab = {
        s.level: hu + offsets.get(s.level[0], 0.0) + 6.0 * float(rng.standard_normal())
        for s in shapes
    }
    ribs = _rib_scales(rng, shapes, p.variants)
    return Subject(
        age,
        habitus,
        size,
        hu,
        draw_curvature(rng),
        placement,
        bodies,
        expected,
        morph,
        confounders,
        trab,
        ribs,
        requests,
    )


def _narrow_disc(s: LevelShape, confounders: list[str], rng: np.random.Generator) -> LevelShape:
    if "disc_narrowing" not in confounders:
        return s
    f = float(rng.uniform(0.35, 0.6))
    return replace(s, disc_anterior=s.disc_anterior * f, disc_posterior=s.disc_posterior * f)


def _bodies(
    rng: np.random.Generator,
    shapes: list[LevelShape],
    requests: list[FractureRequest],
    confounders: dict[str, list[str]],
) -> tuple[dict[str, BodyModel], dict[str, float], dict[str, str]]:
    wanted = {f.level: f for f in requests}
    nominal = [
        keep_normal(
            BodyModel(
                s.width,
                s.depth,
                s.height_posterior,
                s.wedge_ratio,
                s.concavity_superior,
                s.concavity_inferior,
            )
        )
        for s in shapes
    ]
    hp = [b.heights()["posterior"] for b in nominal]
    bodies, expected, morph = {}, {}, {}
    for n, (s, body) in enumerate(zip(shapes, nominal, strict=True)):
        neighbours = hp[max(n - 1, 0) : n] + hp[n + 1 : n + 2]
        graded = s.level in FRACTURE_LEVELS  # C1-T3 heights change too fast between levels
        expected[s.level] = float(np.mean(neighbours)) if graded and neighbours else hp[n]
        morph[s.level] = "normal"
        if s.level in wanted:
            f = wanted[s.level]
            loss = draw_height_loss(rng, f.grade)
            body = fracture_body(body, f.morphology, loss, expected[s.level])
            morph[s.level] = f.morphology
        elif "schmorl_node" in confounders[s.level]:
            body = replace(body, schmorl=draw_schmorl(rng, body))
        if s.level in ("T11", "T12", "L1") and s.wedge_ratio < 0.95:
            confounders[s.level].append("physiological_wedge")
        bodies[s.level] = body
    return bodies, expected, morph


def _placement_shape(s: LevelShape, body: BodyModel) -> LevelShape:
    """Heights the stacking sees: a fractured body is shorter (and a wedge tilts the spine)."""
    h = body.heights()
    unfractured = body.unfractured_heights()
    hp_scale = h["posterior"] / unfractured["posterior"]
    ratio = h["anterior"] / h["posterior"] * body.wedge_ratio / max(_nominal_ratio(body), 1e-3)
    return replace(s, height_posterior=s.height_posterior * hp_scale, wedge_ratio=ratio)


def _nominal_ratio(body: BodyModel) -> float:
    h = body.unfractured_heights()
    return h["anterior"] / h["posterior"]


def _rib_scales(
    rng: np.random.Generator, shapes: list[LevelShape], variants: bool
) -> dict[str, float]:
    """Rib size per thoracic level: the last pair is sometimes short or missing (11 pairs).
    A T13 is thoracic by its rib, so a spine with one keeps it (short at least) and T12's."""
    out = {s.level: 1.0 for s in shapes if s.level.startswith("T")}
    if variants and "T12" in out:
        last = "T13" if "T13" in out else "T12"
        draw = rng.random()
        if draw < 0.08:
            out[last] = 0.55 if last == "T13" else 0.0  # 11 rib pairs (13 thoracic: a short one)
        elif draw < 0.2:
            out[last] = 0.55  # hypoplastic last rib
    return out
