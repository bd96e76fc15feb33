"""Rasterise vertebrae, discs and the sacrum at full resolution inside their boxes.

Each vertebra is evaluated in its own local frame: the analytic body
(:mod:`training.phantoms.vertebral_body`) and the posterior elements as capsules (pedicles,
laminae, spinous and transverse processes, articular processes). Labels are the sign of the
signed distance at the voxel centre; the image gets a partial-volume blend over ``edge_mm``.
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.phantoms.anatomy import LevelShape, PlacedVertebra
from training.phantoms.grid import F32, F64, Box, Grid, capsule, local_coords, occupancy, sub_box
from training.phantoms.vertebral_body import BodyModel


@dataclass(frozen=True)
class BoneLook:
    """HU of bone parts for one subject (realistic or randomized), and the thickness its arches
    are drawn at."""

    cortical: float
    trabecular: float
    posterior_cortical: float
    disc: float
    disc_nucleus: float
    gas: float
    edge_mm: float
    cortical_mm: float
    # thickness of the posterior elements against the nominal shapes (radii of laminae,
    # processes and facets; pedicles half as much): 1 in realistic mode; randomized mode
    # draws thin arches too, as real CT shows them (thin laminae and transverse processes,
    # partial-volumed to 100-200 HU), which the outline missed when every arch was thick
    arch_scale: float = 1.0


@dataclass
class Volumes:
    grid: Grid
    image: NDArray[np.int16]  # HU, Fortran order
    labels: NDArray[np.uint8]
    subregions: NDArray[np.uint8]


@dataclass
class Raster:
    """What one vertebra left in the volume (voxel statistics of its own mask)."""

    voxels: int = 0
    centroid_vox: F64 = field(default_factory=lambda: np.zeros(3))
    body_centroid_vox: F64 = field(default_factory=lambda: np.zeros(3))
    touches_edge: bool = False


def posterior_capsules(
    s: LevelShape, body: BodyModel, scale: float = 1.0
) -> list[tuple[F64, F64, float, float]]:
    """(start, end, radius, w_scale) of the posterior elements in local (u, v, w) mm, their
    radii times ``scale`` (the pedicles' times the mean of ``scale`` and 1)."""
    h = s.height_posterior
    vp = body.v_posterior
    pr = max(0.5 * s.pedicle_width, 2.5)
    x = 0.5 * s.canal_width + 0.6 * pr
    v_end = vp - 0.75 * s.canal_depth
    v_lam = vp - s.canal_depth - 3.0
    ang = np.radians(s.spinous_angle_deg)
    tip = np.array([0.0, v_lam - s.spinous_length * np.cos(ang), -s.spinous_length * np.sin(ang)])
    tv = 0.65 if s.index < 18.5 else 0.2  # thoracic transverse processes point backwards
    out: list[tuple[F64, F64, float, float]] = []
    for side in (-1.0, 1.0):
        ped_a = np.array([side * x, vp + 3.0, 0.12 * h])
        ped_b = np.array([side * x, v_end, 0.08 * h])
        lam_b = np.array([0.0, v_lam, -0.05 * h])
        tp = np.array([side * (x + s.transverse_length), v_end - tv * s.transverse_length, 0.1 * h])
        facet_sup = np.array([side * (x + 1.0), v_end - 2.0, 0.55 * h + 2.0])
        facet_inf = np.array([side * (x - 1.0), v_end - 6.0, -0.55 * h - 2.0])
        out += [
            (ped_a, ped_b, pr * (1.0 + scale) / 2.0, 1.5),
            (ped_b, lam_b, scale * (2.6 + 0.06 * h), 2.2),
            (ped_b, tp, scale * (2.4 + 0.04 * h), 1.7),
            (ped_b, facet_sup, scale * 4.0, 1.0),
            (ped_b + np.array([0, -3.0, 0]), facet_inf, scale * 4.0, 1.0),
        ]
    spinous = scale * (2.5 + 0.05 * h)
    out.append((np.array([0.0, v_lam, -0.05 * h]), tip, spinous, 3.0 if tv < 0.5 else 1.6))
    if s.level == "C2":  # dens
        out.append((np.array([0, 0.2 * body.b, 0.4 * h]), np.array([0, 0.2 * body.b, h + 8]), 5, 1))
    return out


def osteophyte_capsules(body: BodyModel) -> list[tuple[F64, F64, float, float]]:
    """Anterolateral marginal lips at both endplates (off the mid-sagittal plane)."""
    out = []
    for side in (-1.0, 1.0):
        for sign in (-1.0, 1.0):
            rim = np.array(
                [side * 0.62 * body.a, 0.72 * body.b, sign * 0.45 * body.height_posterior]
            )
            tip = rim + np.array([side * 3.0, 3.5, sign * 3.0])
            out.append((rim, tip, 1.8, 1.0))
    return out


def _local_box(grid: Grid, v: PlacedVertebra, lo: F64, hi: F64) -> Box | None:
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    world = corners @ v.frame.T + v.centre
    return grid.box(world.min(axis=0), world.max(axis=0))


def render_vertebra(
    vol: Volumes, placed: PlacedVertebra, body: BodyModel, look: BoneLook, sclerosis: bool
) -> Raster:
    s = placed.shape
    ang = np.radians(s.spinous_angle_deg)
    reach = body.b + s.canal_depth + 3.0 + s.spinous_length * np.cos(ang) + 9.0
    half_w = 0.5 * s.canal_width + 0.6 * s.pedicle_width + s.transverse_length + 8.0
    h = s.height_posterior
    low = max(0.6 * h + 9.0, s.spinous_length * np.sin(ang) + 0.05 * h + 9.0)
    lo = np.array([-half_w, -reach, -low])
    hi = np.array([half_w, body.b + 8.0, 0.6 * h + (h + 14.0 if s.level == "C2" else 9.0)])
    box = _local_box(vol.grid, placed, lo, hi)
    if box is None:
        return Raster()
    u, v, w = local_coords(vol.grid, box, placed.centre, placed.frame)
    far = np.float32(1e3)
    body_sdf = np.full(u.shape, far, np.float32)
    ext = np.array([body.a + 6.0, body.b + 7.0, s.height_posterior + 6.0])
    inner = sub_box(vol.grid, box, placed.centre, placed.frame, -ext, ext)
    if inner is not None:
        body_sdf[inner] = body.sdf(u[inner], v[inner], w[inner])
    post = np.full(u.shape, far, np.float32)
    caps = posterior_capsules(s, body, look.arch_scale)
    if "osteophytes" in placed.confounders:
        body_sdf = union_capsules(
            vol.grid, box, placed.centre, placed.frame, body_sdf, osteophyte_capsules(body), u, v, w
        )
    post = union_capsules(vol.grid, box, placed.centre, placed.frame, post, caps, u, v, w)
    sdf = np.minimum(body_sdf, post)
    tight = tight_box(sdf, look.edge_mm)
    if tight is None:
        return Raster()
    box, inner = compose(box, tight), relative(inner, tight)
    u, v, w, body_sdf, post, sdf = (a[tight] for a in (u, v, w, body_sdf, post, sdf))
    hu = _bone_hu(body, body_sdf, post, (u, v, w), inner, look, sclerosis)
    _composite(vol, box, sdf, hu, look.edge_mm)
    inside = sdf < 0
    is_body = inside & (body_sdf <= post)
    vol.labels[box][inside] = s.label
    sub = vol.subregions[box]
    sub[inside] = 2
    sub[is_body] = 1
    return _raster(vol.grid, box, inside, is_body)


def tight_box(sdf: F32, edge_mm: float) -> Box | None:
    """The index box (relative to ``sdf``) of the voxels a shape touches (sdf below the edge)."""
    touched = sdf < np.float32(0.5 * edge_mm + 0.5)
    spans = []
    for axis in range(3):
        other = tuple(n for n in range(3) if n != axis)
        hit = np.nonzero(touched.any(axis=other))[0]
        if hit.size == 0:
            return None
        spans.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return (spans[0], spans[1], spans[2])


def compose(outer: Box, inner: Box) -> Box:
    """``inner`` (relative to ``outer``) as absolute slices."""
    a, b, c = (
        slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner, strict=True)
    )
    return (a, b, c)


def relative(box: Box | None, frame: Box) -> Box | None:
    """``box`` (relative to the same origin as ``frame``) re-expressed inside ``frame``."""
    if box is None:
        return None
    out = []
    for b, f in zip(box, frame, strict=True):
        start, stop = max(b.start, f.start) - f.start, min(b.stop, f.stop) - f.start
        if stop <= start:
            return None
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


def union_capsules(
    grid: Grid,
    box: Box,
    centre: F64,
    frame: F64,
    sdf: F32,
    caps: list[tuple[F64, F64, float, float]],
    u: F32,
    v: F32,
    w: F32,
) -> F32:
    """min(sdf, capsules), each capsule evaluated only inside its own bounding box."""
    for a, b, r, ws in caps:
        reach = np.array([r, r, r * ws]) + 1.0
        inner = sub_box(
            grid, box, centre, frame, np.minimum(a, b) - reach, np.maximum(a, b) + reach
        )
        if inner is not None:
            part = capsule(u[inner], v[inner], w[inner], a, b, r, ws)
            np.minimum(sdf[inner], part, out=sdf[inner])
    return sdf


def _bone_hu(
    body: BodyModel,
    body_sdf: F32,
    post: F32,
    uvw: tuple[F32, F32, F32],
    inner: Box | None,
    look: BoneLook,
    sclerosis: bool,
) -> F32:
    u, v, w = uvw
    shell = np.clip(1.0 + body_sdf / np.float32(look.cortical_mm), 0.0, 1.0)
    grain = np.zeros(u.shape, np.float32)
    if inner is not None:
        amplitude = np.float32(0.3 * abs(look.trabecular) + 15.0)
        grain[inner] = amplitude * trabecular_texture(u[inner], v[inner], w[inner])
    hu_body = look.trabecular + grain + (look.cortical - look.trabecular - grain) * shell
    if sclerosis:
        top, bottom = body.surfaces(u, v)
        near = np.minimum(np.abs(w - top), np.abs(w - bottom))
        hu_body = hu_body + 260.0 * np.clip(1.0 - near / 4.0, 0.0, 1.0)
    if body.deformation.kind != "normal":  # compacted trabeculae under the fractured endplate
        top, _ = body.surfaces(u, v)
        hu_body = hu_body + 120.0 * np.clip(1.0 - np.abs(w - top) / 5.0, 0.0, 1.0)
    marrow = look.trabecular + 0.35 * (look.posterior_cortical - look.trabecular)
    hu_post = marrow + (look.posterior_cortical - marrow) * np.clip(1.0 + post / 2.0, 0.0, 1.0)
    return np.where(body_sdf <= post, hu_body, hu_post).astype(np.float32)


_TEXTURE = np.random.default_rng(20261128).standard_normal((32, 32, 32)).astype(np.float32)
_TEXTURE = ndimage.gaussian_filter(_TEXTURE, 0.9, mode="wrap")
_TEXTURE /= _TEXTURE.std()


def trabecular_texture(u: F32, v: F32, w: F32, cell_mm: float = 0.7) -> F32:
    """Unit-SD trabecular grain (about 2 mm), a fixed periodic field sampled in local mm."""
    n = _TEXTURE.shape[0]
    iu = (u / np.float32(cell_mm)).astype(np.int32) % n
    iv = (v / np.float32(cell_mm)).astype(np.int32) % n
    iw = (w / np.float32(cell_mm)).astype(np.int32) % n
    return _TEXTURE[iu, iv, iw]


def _composite(vol: Volumes, box: Box, sdf: F32, hu: F32 | float, edge_mm: float) -> None:
    occ = occupancy(sdf, edge_mm)
    region = vol.image[box]
    np.add(region, np.rint(occ * (hu - region)), out=region, casting="unsafe")


def _raster(grid: Grid, box: Box, inside: NDArray[np.bool_], is_body: NDArray[np.bool_]) -> Raster:
    idx = np.nonzero(inside)
    if idx[0].size == 0:
        return Raster()
    start = np.array([sl.start for sl in box], np.float64)
    centroid = np.array([i.mean() for i in idx]) + start
    bidx = np.nonzero(is_body)
    body_c = np.array([i.mean() for i in bidx]) + start if bidx[0].size else centroid
    touches = False
    for axis in range(3):
        lo, hi = box[axis].start, box[axis].stop
        if lo == 0 and idx[axis].min() == 0:
            touches = True
        if hi == grid.shape[axis] and idx[axis].max() == hi - lo - 1:
            touches = True
    return Raster(int(idx[0].size), centroid, body_c, touches)


def render_disc(
    vol: Volumes,
    lower: PlacedVertebra,
    upper: PlacedVertebra,
    lower_body: BodyModel,
    upper_body: BodyModel,
    look: BoneLook,
    vacuum: bool,
) -> None:
    """The disc between two bodies: a superelliptic cylinder bridging the endplates."""
    bottom = upper.centre - upper.frame[:, 2] * 0.5 * upper_body.height_posterior
    top = lower.centre + lower.frame[:, 2] * 0.5 * lower_body.height_posterior
    centre = 0.5 * (bottom + top)
    axis = bottom - top
    half = 0.5 * float(np.linalg.norm(axis)) + 6.0 + 0.5 * upper_body.height_posterior * 0.3
    frame = _blend_frames(lower.frame, upper.frame)
    model = BodyModel(
        0.5 * (lower_body.width + upper_body.width) - 1.0,
        0.5 * (lower_body.depth + upper_body.depth) - 1.0,
        1.0,
        1.0,
        0.0,
        0.0,
    )
    ext = np.array([model.a + 2, model.b + 2, half + 2])
    box = _local_box(vol.grid, PlacedVertebra(lower.shape, centre, frame), -ext, ext)
    if box is None:
        return
    u, v, w = local_coords(vol.grid, box, centre, frame)
    side = model.cross_section_sdf(u, v)
    sdf = np.maximum(side, np.abs(w) - np.float32(half))
    nucleus = np.clip(1.0 + side / 8.0, 0.0, 1.0)
    hu = look.disc + (look.disc_nucleus - look.disc) * nucleus
    if vacuum:
        gas = (u / 6.0) ** 2 + ((v + 2.0) / 4.0) ** 2 + (w / 1.5) ** 2 < 1.0
        hu = np.where(gas, np.float32(look.gas), hu)
    _composite(vol, box, sdf, hu.astype(np.float32), look.edge_mm)


def _blend_frames(a: F64, b: F64) -> F64:
    m = a + b
    uu, _, vt = np.linalg.svd(m)
    out: F64 = uu @ vt
    return out
