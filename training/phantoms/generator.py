"""``make_ct_phantom(seed, params)``: draw a subject and an acquisition, build the spine,
paint the body coarse, draw bone at full resolution, add noise, and measure the truth.

Order of work (and of random draws, so a seed replays bit for bit): acquisition, subject
(levels, fractures, confounders, curvature), spine placement, field of view, soft tissue on a
coarse grid (about 2 mm) upsampled, then discs, vertebrae, sacrum, pelvis, ribs and other
bones at full resolution with partial-volume edges, then kernel noise and streaks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from training.phantoms.anatomy import PlacedVertebra, place_spine
from training.phantoms.appearance import Look, bone_look, draw_look, tissue_image, upsample
from training.phantoms.arms import Arm, draw_arm_bones, draw_arms, paint_arms
from training.phantoms.artefacts import add_noise_and_streaks
from training.phantoms.grid import F64, Grid
from training.phantoms.organs import (
    paint_abdomen,
    paint_muscles,
    paint_pelvis_muscles,
    paint_thorax,
)
from training.phantoms.params import VERSE_LABEL, PhantomParams
from training.phantoms.skeleton import (
    draw_pelvis,
    draw_ribs,
    draw_sacrum,
    draw_shoulder_girdle,
    draw_sternum,
)
from training.phantoms.spine import BoneLook, Raster, Volumes, render_disc, render_vertebra
from training.phantoms.subject import Acquisition, Subject, draw_acquisition, draw_subject
from training.phantoms.torso import (
    Contour,
    Landmarks,
    Painter,
    body_contour,
    landmarks,
    paint_body,
    paint_table,
)
from training.phantoms.truth import vertebra_truths
from training.phantoms.types import CTPhantom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anatomy:
    subject: Subject
    placed: list[PlacedVertebra]
    s1_frame: F64
    landmarks: Landmarks
    contour: Contour
    arms: list[Arm]


@dataclass(frozen=True)
class TissueMap:
    """The soft-tissue classes (:class:`~training.phantoms.torso.Tissue`) on the coarse grid."""

    tissue: NDArray[np.uint8]
    grid: Grid
    factors: tuple[int, int, int]

    def full(self, shape: tuple[int, int, int]) -> NDArray[np.uint8]:
        """Nearest-neighbour tissue classes on the CT grid (bone not included)."""
        fx, fy, fz = self.factors
        up = np.repeat(np.repeat(np.repeat(self.tissue, fx, 0), fy, 1), fz, 2)
        return up[: shape[0], : shape[1], : shape[2]]


def make_ct_phantom(seed: int, params: PhantomParams | None = None) -> CTPhantom:
    """One synthetic CT with exact labels and ground truth; deterministic in (seed, params)."""
    return make_ct_phantom_with_tissues(seed, params)[0]


def make_ct_phantom_with_tissues(
    seed: int, params: PhantomParams | None = None
) -> tuple[CTPhantom, TissueMap]:
    """:func:`make_ct_phantom` plus the soft-tissue class map (for HU checks and reports)."""
    p = params or PhantomParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B1E]))
    acq = draw_acquisition(rng, p)
    anatomy = build_anatomy(rng, p, seed)
    grid = field_of_view_grid(rng, acq, anatomy, p.slice_count, p.center_level)
    look = draw_look(
        rng,
        p.mode == "randomized",
        acq.contrast_phase,
        acq.kernel,
        acq.noise_hu,
        bone_look(rng, anatomy.subject.trabecular_hu, p.mode == "randomized", grid.spacing),
    )
    soft, tissues = soft_tissue(rng, grid, anatomy, look)
    vol = Volumes(
        grid,
        soft,
        np.zeros(grid.shape, np.uint8, order="F"),
        np.zeros(grid.shape, np.uint8, order="F"),
    )
    rasters = draw_bones(rng, vol, anatomy, look)
    image = add_noise_and_streaks(rng, vol, look, anatomy.contour, p.streaks)
    truths = vertebra_truths(anatomy.subject, anatomy.placed, rasters, grid)
    acquisition = {**acq.as_dict(), "mode": p.mode, "look": _look_summary(look)}
    phantom = CTPhantom(
        phantom_id=_phantom_id(seed, p),
        seed=seed,
        mode=p.mode,
        image_hu=image,
        vertebrae=vol.labels,
        subregions=vol.subregions,
        affine=grid.affine,
        vertebra_truth=truths,
        acquisition=acquisition,
        params=_params_record(p, anatomy),
    )
    log.debug("phantom %s: %s voxels", phantom.phantom_id, "x".join(map(str, grid.shape)))
    return phantom, tissues


def build_anatomy(rng: np.random.Generator, p: PhantomParams, seed: int) -> Anatomy:
    subject = draw_subject(rng, p)
    s1_top = np.array([float(rng.normal(0.0, 8.0)), 0.0, 0.0])
    placed, s1_frame = place_spine(subject.shapes, subject.curvature, s1_top)
    yaw = np.radians(float(rng.normal(0.0, 2.0)))
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    rot = rot @ _supine_pitch(placed, s1_top, float(rng.normal(0.0, 3.0)))
    for v in placed:
        v.centre = s1_top + rot @ (v.centre - s1_top)
        v.frame = rot @ v.frame
        v.confounders = subject.confounders[v.shape.level]
    lm = landmarks(placed, s1_top)
    contour = body_contour(lm, subject.habitus, rng)
    arms = draw_arms(seed, lm, contour, subject.habitus)
    return Anatomy(subject, placed, rot @ s1_frame, lm, contour, arms)


def _supine_pitch(placed: list[PlacedVertebra], s1_top: F64, extra_deg: float) -> F64:
    """Rotation about the x axis that lays the spine along the table (T1 above S1)."""
    t1 = next(v.centre for v in placed if v.shape.level == "T1") - s1_top
    angle = np.arctan2(t1[1], t1[2]) + np.radians(extra_deg)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def field_of_view_grid(
    rng: np.random.Generator,
    acq: Acquisition,
    anatomy: Anatomy,
    slice_count: int | None,
    center_level: str | None = None,
) -> Grid:
    lm = anatomy.landmarks
    s1 = float(lm.s1_top[2])
    ranges = {
        "chest": (lm.level_z("C7") + rng.uniform(0, 20), lm.level_z("L1") - rng.uniform(0, 30)),
        "abdomen": (lm.level_z("T10") + rng.uniform(0, 30), s1 - rng.uniform(80, 120)),
        "chest_abdomen_pelvis": (lm.level_z("C7") + rng.uniform(0, 20), s1 - rng.uniform(100, 130)),
        "thoracolumbar": (lm.level_z("T3") + rng.uniform(-10, 20), s1 - rng.uniform(20, 60)),
    }
    if acq.field_of_view == "partial":
        centre = rng.uniform(lm.level_z("L4"), lm.level_z("T4"))
        extent = rng.uniform(80.0, 200.0)
        top, bottom = centre + 0.5 * extent, centre - 0.5 * extent
    else:
        top, bottom = ranges[acq.field_of_view]
    if center_level is not None:
        half = 0.5 * (top - bottom)
        top, bottom = lm.level_z(center_level) + half, lm.level_z(center_level) - half
    dz = acq.slice_thickness_mm
    count = slice_count or max(math.ceil((top - bottom) / dz), 4)
    z0 = 0.5 * (top + bottom) - 0.5 * (count - 1) * dz
    n, ps = acq.matrix, acq.pixel_spacing_mm
    zc = 0.5 * (top + bottom)
    xc, yc, _, _ = anatomy.contour.at(zc)
    if n * ps < 380.0:  # a small field of view is centred on the spine
        sx, sy = lm.spine_at(zc)
        xc, yc = float(sx), float(sy) - (0.0 if n * ps < 150.0 else 25.0)
    x0 = xc + 0.5 * (n - 1) * ps + rng.uniform(-10, 10)
    y0 = yc + 0.5 * (n - 1) * ps + rng.uniform(-10, 10)
    return Grid((n, n, count), (ps, ps, dz), (x0, y0, z0))


def soft_tissue(
    rng: np.random.Generator, grid: Grid, anatomy: Anatomy, look: Look
) -> tuple[NDArray[np.int16], TissueMap]:
    """Paint tissue classes on a coarse grid, give them HU, upsample to the CT grid."""
    fx = max(1, round(2.0 / grid.spacing[0]))
    fz = max(1, round(2.5 / grid.spacing[2]))
    ni, nj, nk = grid.shape
    shape = (-(-ni // fx), -(-nj // fx), -(-nk // fz))
    sx, sy, sz = grid.spacing
    ox, oy, oz = grid.origin
    coarse = Grid(
        shape,
        (sx * fx, sy * fx, sz * fz),
        (ox - 0.5 * (fx - 1) * sx, oy - 0.5 * (fx - 1) * sy, oz + 0.5 * (fz - 1) * sz),
    )
    painter = Painter(coarse)
    lm, c = anatomy.landmarks, anatomy.contour
    paint_table(painter, c)
    cavity, _ = paint_body(painter, c)
    z_diaphragm = lm.level_z("T10") + float(rng.uniform(-15, 15))
    paint_thorax(painter, lm, c, cavity, z_diaphragm)
    paint_abdomen(painter, lm, c, cavity, z_diaphragm, rng)
    paint_pelvis_muscles(painter, lm)
    paint_arms(painter, anatomy.arms)
    paint_muscles(painter, lm, anatomy.placed)
    hu = tissue_image(painter.tissue, look, rng, coarse.spacing)
    return upsample(hu, (fx, fx, fz), grid.shape), TissueMap(painter.tissue, coarse, (fx, fx, fz))


def draw_bones(
    rng: np.random.Generator, vol: Volumes, anatomy: Anatomy, look: Look
) -> dict[str, Raster]:
    subject, placed = anatomy.subject, anatomy.placed
    bodies = subject.bodies
    for upper, lower in itertools.pairwise(placed):
        vacuum = "disc_narrowing" in lower.confounders and rng.random() < 0.3
        render_disc(
            vol,
            lower,
            upper,
            bodies[lower.shape.level],
            bodies[upper.shape.level],
            look.bone,
            vacuum,
        )
    rasters: dict[str, Raster] = {}
    for v in placed:
        b = look.bone
        trab = b.trabecular - anatomy.subject.trabecular_hu + subject.trabecular[v.shape.level]
        bone = _with_trabecular(b, trab)
        sclerosis = "endplate_sclerosis" in v.confounders
        rasters[v.shape.level] = render_vertebra(vol, v, bodies[v.shape.level], bone, sclerosis)
    l5 = placed[-1]
    rasters["S"] = draw_sacrum(
        vol,
        anatomy.landmarks.s1_top,
        anatomy.s1_frame,
        l5.shape.width * 1.02,
        l5.shape.depth * 0.95,
        look.bone,
        VERSE_LABEL["S"],
    )
    draw_pelvis(vol, anatomy.landmarks.s1_top, look.bone, subject.size)
    sternum_x = draw_sternum(vol, anatomy.landmarks, anatomy.contour, look.bone)
    thoracic = [
        (v, n + 1, subject.rib_scale.get(v.shape.level, 0.0))
        for n, v in enumerate(x for x in placed if x.shape.level.startswith("T"))
    ]
    draw_ribs(vol, [t for t in thoracic if t[2] > 0], anatomy.contour, look.bone, sternum_x)
    draw_shoulder_girdle(vol, anatomy.landmarks, anatomy.contour, look.bone)
    draw_arm_bones(vol, anatomy.arms, look.bone)
    return rasters


def _with_trabecular(b: BoneLook, trabecular: float) -> BoneLook:
    return replace(b, trabecular=trabecular)


def _look_summary(look: Look) -> dict[str, float | str]:
    return {
        "trabecular_hu": round(look.bone.trabecular, 1),
        "cortical_hu": round(look.bone.cortical, 1),
        "noise_hu": round(look.noise_hu, 1),
        "kernel": look.kernel,
        "streak_hu": round(look.streak_hu, 1),
        "soft_blur_mm": round(look.soft_blur_mm, 2),
        "bias_hu": round(look.bias_hu, 1),
        "arch_scale": round(look.bone.arch_scale, 2),
    }


def _params_record(p: PhantomParams, anatomy: Anatomy) -> dict[str, object]:
    subject = anatomy.subject
    record = p.as_dict()
    record["fractures"] = [f.__dict__ for f in subject.fractures]
    record["drawn"] = {
        "age": round(subject.age, 1),
        "habitus": round(subject.habitus, 3),
        "size": round(subject.size, 3),
        "trabecular_hu_l1": round(subject.trabecular_hu, 1),
        "curvature": {k: round(v, 2) for k, v in subject.curvature.__dict__.items()},
        "rib_pairs": sum(1 for v in subject.rib_scale.values() if v > 0),
        "arms_down": bool(anatomy.arms),
    }
    return record


def _phantom_id(seed: int, p: PhantomParams) -> str:
    params = p.as_dict()
    # knobs added later leave the ids of phantoms made without them as they were
    for later in ("fracture_count", "t13_rate", "l6_rate"):
        if params[later] is None:
            del params[later]
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    return f"ct-{seed:06d}-{digest.hexdigest()[:6]}"
