"""Vertebral body morphometry from a vertebra label map, in each vertebra's own frame.

Definition (shared with the phantom generator, ``training.phantoms``): heights are measured
on the mid-sagittal section of the vertebral body, along the vertebra's own
superior-inferior axis, at 10 % (anterior, Ha), 50 % (middle, Hm) and 90 % (posterior, Hp)
of the body's antero-posterior depth measured from its anterior surface.

How it is measured (all in LPS millimetres through ``Volume.affine``, so anisotropic voxels
and any orientation work alike):

1. **Body**: voxels of the sub-region map equal to 1 (vertebral body) when one is given,
   its largest face-connected piece;
   otherwise the voxels within the body's depth, found on a first mid-sagittal section
   (through the whole vertebra's centroid, patient posterior direction): the first run of
   columns from the anterior side, which the spinal canal ends.
2. **Frame**: superior axis along the spine centreline: the tangent of a quadratic through
   the body centroids of up to two complete, adjacent neighbours on each side (a chord with
   one); without neighbours, the smallest principal axis of the body. Posterior axis from
   the body centroid towards the whole-vertebra centroid (the posterior elements), made
   orthogonal to the superior axis; when they coincide, the patient's posterior direction.
   The frame is then turned (about its left axis, at most 20 deg per step, two steps) so the
   body's endplates lie level on average (their bisector): the body may sit tilted on the
   centreline (lordosis at L5). Left axis = superior x posterior.
3. **Mid-sagittal section**: the plane through the body's centre spanned by the superior and
   posterior axes. The mask is sampled there by trilinear interpolation
   (``scipy.ndimage.map_coordinates``, threshold 0.5) on planes at -2, -1, 0, 1, 2 mm.
4. **Depth**: the first run of occupied columns from the anterior side on the slab mean (the
   canal separates the body from the arch on the midline), trimmed at each end to the
   columns at least WALL_MIN_FRACTION as tall as the central half's median, and further to
   ROUNDED_CORNER_FRACTION (front) / POSTERIOR_WALL_MIN_FRACTION (back) where the columns
   below that span at most ROUNDING_MM: a rounded corner (a network's segmentation draws
   them) or a wall bulging at mid-height (real L5s) does not move a column into the
   rounding, while the long low front of a wedge stays. **Heights**: the extent along the
   superior axis of the column's longest run inside the body (runs apart by at most
   MAX_HOLE_MM joined) at 10 / 50 / 90 % of the depth, sub-voxel by linear interpolation of
   the crossings; the median over the planes. Hp is the tallest of the 80 / 85 / 90 %
   columns when the 90 % one falls sharply (SHARP_DROP) from the 80 % one.
5. **Centroid** (``centroid_mm``): the vertebral body's, as VerSe centroids are.

A vertebra whose mask comes within BORDER_MM of the image border (or touches it) is cut by the
field of view: it is marked incomplete and gets no heights (and so no grade). The margin is
there because a segmentation rarely runs into the last slice of a vertebra the series cut: it
stops a slice short, and the truncated body would be graded as a crush.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from pipeline.levels import anatomical_position, are_adjacent, is_vertebra_label, level_name
from pipeline.types import Heights, Volume

log = logging.getLogger(__name__)

HEIGHT_FRACTIONS = {"anterior": 0.10, "middle": 0.50, "posterior": 0.90}
# The posterior wall is the reference height and is upright in wedge and biconcave fractures
# (lowered with the rest of the body in a crush): where the 90 % column falls below SHARP_DROP
# of the 80 % one (a segmentation's rounded back corner, not a sloping back), Hp is the
# tallest of the columns at these fractions, so the rounding is not read as a crush.
POSTERIOR_WALL_FRACTIONS = (0.80, 0.85, 0.90)
SHARP_DROP = 0.75
MAX_HOLE_MM = 3.0  # a gap in a column up to this long is a hole in the body, not a disc
SLAB_OFFSETS_MM = (-2.0, -1.0, 0.0, 1.0, 2.0)  # planes averaged around the midline
MIN_VERTEBRA_VOLUME_MM3 = 1000.0  # smaller labels are fragments: incomplete
SECTION_HALF_WIDTH_MM = 60.0
COLUMN_HALF_HEIGHT_MM = 45.0
RUN_GAP_MM = 2.0  # a gap this wide ends the body's run of columns (the spinal canal)
NOT_MEASURED_LABELS = frozenset({26})  # sacrum
BORDER_MM = 3.0  # a vertebra this close to the image border is cut (see the module docstring)
REFINE_ITERATIONS = 2
MAX_SECTION_TURN_DEG = 20.0
WALL_MIN_FRACTION = 0.25  # columns lower than this share of the central ones: corner
# behind, a rounded corner ends where the columns reach this share (within ROUNDING_MM)
POSTERIOR_WALL_MIN_FRACTION = 0.6
ROUNDED_CORNER_FRACTION = 0.5  # in front, a rounded corner ends where columns reach this
ROUNDING_MM = 4.0  # ... within this depth; a longer low end is the body's own (a wedge)


@dataclass(frozen=True)
class VertebraFrame:
    """A vertebra-local frame: origin at the body centroid, unit axes in LPS."""

    origin_mm: NDArray[np.float64]
    superior: NDArray[np.float64]
    posterior: NDArray[np.float64]

    @property
    def left(self) -> NDArray[np.float64]:
        return np.cross(self.superior, self.posterior)

    def to_world(
        self, u: NDArray[np.float64], v: NDArray[np.float64], w: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Points (..., 3) for local coordinates u posterior, v superior, w left (mm)."""
        return (
            self.origin_mm
            + u[..., None] * self.posterior
            + v[..., None] * self.superior
            + w[..., None] * self.left
        )


@dataclass(frozen=True)
class VertebraMeasurement:
    """What morphometry found for one label."""

    label: int
    level: str
    complete: bool
    # the vertebral body's centroid (as VerSe centroids are): LPS mm, and the index on the
    # label map's grid (its own axis order)
    centroid_mm: tuple[float, float, float]
    centroid_voxel: tuple[float, float, float]
    volume_mm3: float
    body_centroid_mm: tuple[float, float, float] | None = None
    frame: VertebraFrame | None = None
    heights: Heights | None = None
    depth_mm: float | None = None
    # the image's sampling interval along the vertebra's superior axis (slice spacing, for
    # axial CT): heights are uncertain by about this much
    axial_step_mm: float | None = None
    # endplate points (LPS mm) on the midline: "<anterior|middle|posterior>_<superior|inferior>"
    endplate_points_mm: dict[str, tuple[float, float, float]] | None = None
    note: str = ""


@dataclass
class _Region:
    label: int
    offset: NDArray[np.int64]  # crop start (i, j, k)
    mask: NDArray[np.bool_]  # the whole vertebra, on the crop
    body: NDArray[np.bool_]  # the vertebral body, on the crop
    has_subregions: bool
    touches_border: bool


def measure_vertebrae(
    labels: Volume, subregions: NDArray[np.integer] | None = None
) -> tuple[VertebraMeasurement, ...]:
    """Measure every VerSe-labelled vertebra of ``labels`` (subregions: 1 body, 2 posterior)."""
    array = np.asarray(labels.array)
    if subregions is not None and subregions.shape != array.shape:
        raise ValueError(
            f"sub-region map shape {subregions.shape} differs from the label map {array.shape}"
        )
    margin = tuple(max(1, int(np.ceil(BORDER_MM / s - 1e-6))) for s in labels.spacing_mm)
    regions = _regions(array, subregions, margin)
    voxel_volume = float(abs(np.linalg.det(labels.affine[:3, :3])))
    complete = {
        r.label: bool(
            not r.touches_border and r.mask.sum() * voxel_volume >= MIN_VERTEBRA_VOLUME_MM3
        )
        for r in regions
    }
    measurable = [r for r in regions if complete[r.label] and r.label not in NOT_MEASURED_LABELS]
    _find_bodies([r for r in measurable if not r.has_subregions], labels)
    centreline = {r.label: _centroid_mm(r.body, r.offset, labels.affine) for r in measurable}
    results = []
    for region in regions:
        tangent = _centreline_tangent(region.label, centreline)
        results.append(_measure(region, labels, voxel_volume, tangent, complete))
    return tuple(results)


def _regions(
    array: NDArray[np.integer],
    subregions: NDArray[np.integer] | None,
    margin: tuple[int, ...],
) -> list[_Region]:
    max_label = int(array.max(initial=0))
    integer = array if array.dtype in (np.uint8, np.int32, np.int64) else array.astype(np.int32)
    boxes = _label_boxes(integer, max_label)
    regions = []
    for index, box in enumerate(boxes):
        label = index + 1
        if box is None or not is_vertebra_label(label):
            continue
        grown = tuple(
            slice(max(s.start - 2, 0), min(s.stop + 2, n))
            for s, n in zip(box, array.shape, strict=True)
        )
        mask = array[grown] == label
        touches = any(
            s.start < m or s.stop > n - m for s, n, m in zip(box, array.shape, margin, strict=True)
        )
        body = mask & (subregions[grown] == 1) if subregions is not None else mask
        has_sub = subregions is not None and bool(body.any())
        if has_sub:
            body = _largest_piece(body)
        if not has_sub:
            body = mask  # until _find_bodies
        offset = np.array([s.start for s in grown], dtype=np.int64)
        regions.append(_Region(label, offset, mask, body, has_sub, touches))
    return sorted(regions, key=lambda r: anatomical_position(r.label))


def _largest_piece(body: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The body's largest face-connected piece: a segmentation that calls a patch of the
    arch "body" (a spinous process, a pedicle) would otherwise stretch the body's
    front-to-back extent, and its posterior height would be measured on that patch."""
    pieces, count = ndimage.label(body)
    if count < 2:
        return body
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    out: NDArray[np.bool_] = pieces == int(np.argmax(sizes))
    return out


def _label_boxes(array: NDArray[np.integer], max_label: int) -> list[tuple[slice, ...] | None]:
    """``ndimage.find_objects(array, max_label)``, fast on large, mostly empty label maps.

    find_objects visits every voxel in index order: on a 512 x 512 x 400 map in Fortran
    order (NIfTI, DICOM volumes) that strides through memory and takes over a second. The
    labelled voxels' bounding box (three cheap projections) is searched instead, in its
    memory order; the boxes are shifted back, so they are exactly find_objects' boxes."""
    if max_label < 1:
        return []
    occupied = [
        np.flatnonzero(array.any(axis=tuple(a for a in range(array.ndim) if a != axis)))
        for axis in range(array.ndim)
    ]
    start = [int(o[0]) for o in occupied]
    crop = array[tuple(slice(s, int(o[-1]) + 1) for s, o in zip(start, occupied, strict=True))]
    fortran = crop.strides[0] < crop.strides[-1]
    found = ndimage.find_objects(crop.T if fortran else crop, max_label=max_label)
    boxes: list[tuple[slice, ...] | None] = []
    for box in found:
        if box is None:
            boxes.append(None)
            continue
        ordered = box[::-1] if fortran else box
        boxes.append(
            tuple(slice(b.start + s, b.stop + s) for b, s in zip(ordered, start, strict=True))
        )
    return boxes


def _centroid_mm(
    mask: NDArray[np.bool_], offset: NDArray[np.int64], affine: NDArray[np.float64]
) -> NDArray[np.float64]:
    index = np.argwhere(mask).mean(axis=0) + offset
    return np.asarray((affine @ np.append(index, 1.0))[:3], dtype=np.float64)


def _centreline_tangent(
    label: int, centreline: dict[int, NDArray[np.float64]]
) -> NDArray[np.float64] | None:
    """Unit tangent (towards the head) of the spine centreline at ``label``.

    A quadratic through the body centroids of up to two complete, contiguous neighbours
    on each side (a chord with one neighbour); None without neighbours.
    """
    if label not in centreline:
        return None
    order = sorted(centreline, key=anatomical_position)
    at = order.index(label)
    lo = at
    while lo > max(at - 2, 0) and are_adjacent(order[lo - 1], order[lo]):
        lo -= 1
    hi = at
    while hi < min(at + 2, len(order) - 1) and are_adjacent(order[hi], order[hi + 1]):
        hi += 1
    if hi == lo:
        return None
    points = np.array([centreline[n] for n in order[lo : hi + 1]])
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(steps)])
    degree = 2 if len(points) >= 3 else 1
    coefficients = np.polyfit(t, points, degree)  # (degree + 1, 3)
    powers = np.arange(degree, 0, -1)
    derivative = (coefficients[:-1] * (powers * t[at - lo] ** (powers - 1))[:, None]).sum(axis=0)
    towards_head = -derivative  # t grows towards the feet
    return np.asarray(towards_head / np.linalg.norm(towards_head), dtype=np.float64)


def _measure(
    region: _Region,
    labels: Volume,
    voxel_volume: float,
    tangent: NDArray[np.float64] | None,
    complete: dict[int, bool],
) -> VertebraMeasurement:
    whole = labels.affine @ np.append(np.argwhere(region.mask).mean(axis=0) + region.offset, 1.0)
    index = np.argwhere(region.body).mean(axis=0) + region.offset
    centroid = labels.affine @ np.append(index, 1.0)
    base = VertebraMeasurement(
        label=region.label,
        level=level_name(region.label),
        complete=complete[region.label],
        centroid_mm=_triple(centroid[:3]),
        centroid_voxel=_triple(index),
        volume_mm3=float(region.mask.sum() * voxel_volume),
    )
    if region.label in NOT_MEASURED_LABELS:
        return _replace(base, note="sacrum: not measured")
    if not base.complete:
        reason = "touches the image border" if region.touches_border else "too small"
        return _replace(base, note=f"incomplete: {reason}; not measured")
    frame = _frame(region, labels.affine, whole[:3], tangent)
    sampler = _MaskSampler(region.body if region.has_subregions else region.mask, region, labels)
    return _measure_heights(base, frame, sampler)


def _find_bodies(regions: list[_Region], labels: Volume) -> None:
    """Without a sub-region map: the body is the part of the vertebra in front of the canal.

    A first frame (centreline through the whole-vertebra centroids, the patient's posterior
    direction) gives the mid-sagittal section; its first run of columns from the anterior
    side spans the body's depth, and the voxels within that depth are the body.
    """
    whole = {r.label: _centroid_mm(r.mask, r.offset, labels.affine) for r in regions}
    for region in regions:
        tangent = _centreline_tangent(region.label, whole)
        superior = tangent if tangent is not None else np.array([0.0, 0.0, 1.0])
        posterior = np.array([0.0, 1.0, 0.0]) - superior[1] * superior
        frame = VertebraFrame(whole[region.label], superior, posterior / np.linalg.norm(posterior))
        frame = _aligned_to_section(frame, _MaskSampler(region.mask, region, labels))
        region.body = _body_in_depth(region, labels, frame)


def _body_in_depth(region: _Region, labels: Volume, frame: VertebraFrame) -> NDArray[np.bool_]:
    extent = _body_depth(frame, _MaskSampler(region.mask, region, labels))
    if extent is None:
        return region.mask
    index = np.argwhere(region.mask) + region.offset
    world = (labels.affine[:3, :3] @ index.T).T + labels.affine[:3, 3]
    u = (world - frame.origin_mm) @ frame.posterior
    inside = (u >= extent[0]) & (u <= extent[1])
    body = np.zeros_like(region.mask)
    local = index[inside] - region.offset
    body[local[:, 0], local[:, 1], local[:, 2]] = True
    return body if body.any() else region.mask


def _frame(
    region: _Region,
    affine: NDArray[np.float64],
    whole_centroid: NDArray[np.float64],
    tangent: NDArray[np.float64] | None,
) -> VertebraFrame:
    body_centroid = _centroid_mm(region.body, region.offset, affine)
    superior = tangent if tangent is not None else _body_axis(region.body, region.offset, affine)
    towards_arch = whole_centroid - body_centroid
    towards_arch -= towards_arch.dot(superior) * superior
    if np.linalg.norm(towards_arch) < 3.0:
        # No arch to point to: the patient's posterior (LPS +y), or, for a body whose height
        # axis lies along y (a malformed segmentation), the next image axis that is not.
        for axis in ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)):
            towards_arch = np.array(axis) - np.dot(axis, superior) * superior
            if np.linalg.norm(towards_arch) > 0.5:
                break
    posterior = towards_arch / np.linalg.norm(towards_arch)
    return VertebraFrame(body_centroid, superior, posterior)


def _body_axis(
    body: NDArray[np.bool_], offset: NDArray[np.int64], affine: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The body's smallest principal axis (its height), pointing to the head (LPS +z)."""
    points = (affine[:3, :3] @ (np.argwhere(body) + offset).T).T
    _, vectors = np.linalg.eigh(np.cov(points.T))
    axis = vectors[:, 0]
    if axis[2] < 0:
        axis = -axis
    return np.asarray(axis / np.linalg.norm(axis), dtype=np.float64)


class _MaskSampler:
    """Trilinear samples of one mask (crop) at LPS points."""

    def __init__(self, mask: NDArray[np.bool_], region: _Region, labels: Volume) -> None:
        self._values = mask.astype(np.float32)
        self._offset = region.offset
        self._inverse = np.linalg.inv(labels.affine)
        self.voxel_axes = labels.affine[:3, :3]  # columns: one voxel step along i, j, k (mm)

    def __call__(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        flat = points_mm.reshape(-1, 3)
        index = (self._inverse[:3, :3] @ flat.T) + self._inverse[:3, 3:4]
        index -= self._offset[:, None]
        values = ndimage.map_coordinates(self._values, index, order=1, mode="constant", cval=0.0)
        return np.asarray(values, dtype=np.float64).reshape(points_mm.shape[:-1])


def _measure_heights(
    base: VertebraMeasurement, frame: VertebraFrame, sampler: _MaskSampler
) -> VertebraMeasurement:
    for _ in range(REFINE_ITERATIONS):
        frame = _aligned_to_section(frame, sampler)
    extent = _body_depth(frame, sampler)
    if extent is None:
        return _replace(base, frame=frame, note="no body found on the mid-sagittal section")
    anterior_u, posterior_u = extent
    depth = posterior_u - anterior_u
    heights: dict[str, float] = {}
    points: dict[str, tuple[float, float, float]] = {}
    for name, fraction in HEIGHT_FRACTIONS.items():
        candidates = [fraction] if name != "posterior" else POSTERIOR_WALL_FRACTIONS
        measured = [
            (_column_height(frame, sampler, anterior_u + f * depth), anterior_u + f * depth)
            for f in candidates
        ]
        # the posterior wall: the 90 % column, unless it falls sharply from the 80 % one (a
        # rounded corner, not a sloping back): then the tallest of the back columns
        (height, span), u = measured[-1]
        if len(measured) > 1 and height < SHARP_DROP * measured[0][0][0]:
            (height, span), u = max(measured, key=lambda item: item[0][0])
        heights[name] = height
        if span is not None:
            for end, v in zip(("inferior", "superior"), span, strict=True):
                world = frame.to_world(np.array(u), np.array(v), np.array(0.0))
                points[f"{name}_{end}"] = _triple(world)
    return _replace(
        base,
        body_centroid_mm=_triple(frame.origin_mm),
        frame=frame,
        heights=Heights(**heights),
        depth_mm=float(depth),
        endplate_points_mm=points,
        axial_step_mm=float(np.max(np.abs(sampler.voxel_axes.T @ frame.superior))),
    )


def _aligned_to_section(frame: VertebraFrame, sampler: _MaskSampler) -> VertebraFrame:
    """Turn the frame (about its left axis) so the body's endplates lie level on average.

    The centreline gives the spine's direction; the body itself may sit tilted on it
    (lordosis at L5, kyphosis at the thoracic ends). Lines fitted to the superior and
    inferior endplates over the central 20-80 % of the depth give the body's own tilt (their
    mean slope: the bisector of the endplates). Turns above MAX_SECTION_TURN_DEG are ignored.
    """
    extent = _body_depth(frame, sampler)
    if extent is None:
        return frame
    depth = extent[1] - extent[0]
    columns = np.linspace(extent[0] + 0.2 * depth, extent[0] + 0.8 * depth, 13)
    tops, bottoms, used = [], [], []
    for u in columns:
        _, span = _column_height(frame, sampler, float(u), offsets=(0.0,))
        if span is not None:
            bottoms.append(span[0])
            tops.append(span[1])
            used.append(u)
    if len(used) < 5:
        return frame
    slope = (np.polyfit(used, tops, 1)[0] + np.polyfit(used, bottoms, 1)[0]) / 2
    angle = float(np.arctan(slope))
    if abs(np.degrees(angle)) > MAX_SECTION_TURN_DEG:
        return frame
    posterior = np.cos(angle) * frame.posterior + np.sin(angle) * frame.superior
    superior = -np.sin(angle) * frame.posterior + np.cos(angle) * frame.superior
    centre_u = (extent[0] + extent[1]) / 2
    centre_v = float(np.mean(tops) + np.mean(bottoms)) / 2
    origin = frame.to_world(np.array(centre_u), np.array(centre_v), np.array(0.0))
    return VertebraFrame(origin, superior, posterior)


def _body_depth(frame: VertebraFrame, sampler: _MaskSampler) -> tuple[float, float] | None:
    """Anterior and posterior surface (u, mm) of the body on the mid-sagittal slab."""
    step = 0.5
    u = np.arange(-SECTION_HALF_WIDTH_MM, SECTION_HALF_WIDTH_MM + step, step)
    v = np.arange(-COLUMN_HALF_HEIGHT_MM, COLUMN_HALF_HEIGHT_MM + 1.0, 1.0)
    w = np.asarray(SLAB_OFFSETS_MM)
    uu, vv, ww = np.meshgrid(u, v, w, indexing="ij")
    slab = sampler(frame.to_world(uu, vv, ww)).mean(axis=2)
    column_heights = (slab >= 0.5).sum(axis=1).astype(np.float64)  # 1 mm rows
    occupied = np.flatnonzero(column_heights > 0)
    if occupied.size == 0:
        return None
    gaps = np.flatnonzero(np.diff(occupied) * step > RUN_GAP_MM)
    first, last = int(occupied[0]), int(occupied[gaps[0]] if gaps.size else occupied[-1])
    # Rounded corners and a bulging wall are not the body's depth. The body starts where its
    # columns reach a quarter of the typical height of its central columns, or half of it
    # when the columns in between span at most ROUNDING_MM (a rounded corner, as a network's
    # segmentation draws one; a longer low front is a collapsed one: a severe wedge). It ends
    # where they reach POSTERIOR_WALL_MIN_FRACTION of it (with a quarter, the soft back corners
    # of a network's segmentation were the body, and a posterior height measured on them read
    # as a crush).
    centre = np.median(column_heights[first + (last - first) // 4 : last - (last - first) // 4 + 1])
    run = column_heights[first : last + 1]
    front = np.flatnonzero(run >= WALL_MIN_FRACTION * centre)
    rounded = np.flatnonzero(run >= ROUNDED_CORNER_FRACTION * centre)
    back = np.flatnonzero(run >= POSTERIOR_WALL_MIN_FRACTION * centre)
    if front.size and back.size:
        start, end = int(front[0]), int(front[-1])
        if rounded.size and (int(rounded[0]) - start) * step <= ROUNDING_MM:
            start = int(rounded[0])
        if (end - int(back[-1])) * step <= ROUNDING_MM:
            end = int(back[-1])
        first, last = first + start, first + end
    return (float(u[first] - step / 2), float(u[last] + step / 2))


def _column_height(
    frame: VertebraFrame,
    sampler: _MaskSampler,
    u: float,
    offsets: tuple[float, ...] = SLAB_OFFSETS_MM,
) -> tuple[float, tuple[float, float] | None]:
    """Mean extent along the superior axis at depth u over the slab; span on the midline."""
    step = 0.1
    v = np.arange(-COLUMN_HALF_HEIGHT_MM, COLUMN_HALF_HEIGHT_MM + step, step)
    spans = []
    midline: tuple[float, float] | None = None
    for w in offsets:
        values = sampler(frame.to_world(np.full_like(v, u), v, np.full_like(v, w)))
        span = _crossings(v, values)
        if span is not None:
            spans.append(span[1] - span[0])
            if w == 0.0:
                midline = span
    return (float(np.median(spans)) if spans else 0.0, midline)


def _crossings(v: NDArray[np.float64], values: NDArray[np.float64]) -> tuple[float, float] | None:
    """Where the column's longest run inside the mask starts and ends (interpolated), runs
    apart by at most MAX_HOLE_MM counting as one: a piece of the next body that a
    segmentation joined across the disc is not this body's height, a hole in the body's
    mask (low-density bone, the basivertebral foramen) does not halve it."""
    inside = np.flatnonzero(values >= 0.5)
    if inside.size == 0:
        return None
    step = float(v[1] - v[0]) if v.size > 1 else 1.0
    breaks = np.flatnonzero(np.diff(inside) * step > MAX_HOLE_MM)  # holes are not gaps
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [inside.size - 1]])
    longest = int(np.argmax(inside[stops] - inside[starts]))
    first, last = int(inside[starts[longest]]), int(inside[stops[longest]])
    return (_interpolate(v, values, first - 1, first), _interpolate(v, values, last + 1, last))


def _interpolate(v: NDArray[np.float64], values: NDArray[np.float64], out: int, inn: int) -> float:
    if out < 0 or out >= v.size:
        return float(v[inn])
    a, b = values[out], values[inn]
    t = (0.5 - a) / (b - a) if b != a else 0.0
    return float(v[out] + t * (v[inn] - v[out]))


def _triple(values: NDArray[np.float64]) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in np.asarray(values).ravel()[:3])
    return (x, y, z)


def _replace(base: VertebraMeasurement, **changes: object) -> VertebraMeasurement:
    return replace(base, **changes)  # type: ignore[arg-type]
