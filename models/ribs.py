"""Which vertebrae bear ribs: the anatomical cue that names the thoracolumbar junction.

A T13 is a 13th rib-bearing vertebra, an L6 a sixth rib-less one above the sacrum. The level
network sees too few transitional spines to tell either from its neighbour (measured on
phantoms: an L6 spine's rib-less L1 read as T12 at 0.55 and, once the labelling lets a T13
or an L6 be named by the count, as a T13). So the ribs are found here, from the image, and
the labelling names a unit T13 only where it bears ribs (models/labelling.py).

On the first stage's grid (3 mm, the whole volume) a rib is bone (above RIB_HU) outside the
vertebrae that

* touches a vertebra (within CONTACT_VOXELS of it): ribs articulate with their vertebra's
  body and transverse process; the iliac crest beside L5, the 12th rib's tip beside L1 and
  the aorta's wall do not touch the spine's bone;
* runs across the body, not along the spine: within a box of RIB_REACH_MM beyond the spine
  on each side and behind the middle of the vertebral bodies (which leaves out the aorta and
  a contrast-filled vena cava in front of the spine), it spans at least RIB_SPAN_MM from
  side to side and at least RIB_SPAN_RATIO times as much as it spans along the spine (an
  iliac wing behind the sacrum spans as much along the spine as across it);
* is at least RIB_MIN_MM3 of bone (noise and trabecular specks are less);
* lies on one side of the spine: a rib ends at its vertebra, so the candidates are cut at
  the spine's midline (a strip of MIDLINE_MM each side of it left out), and bone that
  spanned a rib's width only across it, a vertebral arch with its transverse processes that
  the outline left out of the vertebra, falls short in halves (real CT: the TPTBox L3
  crop's arches, 90 mm from tip to tip, read as a rib pair and named the lumbar crop
  T11-L1); a rib joined to such an arch keeps its own span.

A vertebra's rib contact is the volume of rib bone within CONTACT_VOXELS of it, both sides
together. Measured with exact labels on phantom seeds 0-59 (mode realistic, 235 lumbar
vertebrae): no lumbar vertebra has any; every complete T10-T13 with a rib has at least 450
mm3; upper thoracic vertebrae often have none (their ribs meet the scapula and merge with
it), hence a rib-less upper unit says nothing and the labelling uses the ribs only to
allow a T13 and to keep a lumbar name off a rib-bearing vertebra. Their absence below the
last rib does not make a vertebra lumbar either: a T12 without a rib (11 rib pairs, about
8 % of people) looks like an L1 with an L6 below it; only the count from C2 tells them
apart (docs/training-history.md)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

RIB_HU = 150.0
RIB_MIN_MM3 = 1000.0
RIB_SPAN_MM = 60.0
RIB_SPAN_RATIO = 1.5
RIB_REACH_MM = 100.0
CONTACT_VOXELS = 2
MIDLINE_MM = 5.0
_CUBE = np.ones((3, 3, 3), dtype=bool)


def rib_contact(
    image_hu: NDArray[np.floating],
    units: NDArray[np.integer],
    spacing_mm: tuple[float, float, float],
    anterior_sign: int = 1,
) -> NDArray[np.float64]:
    """Rib contact in mm3 per unit (index 0 unused) of ``units`` (1..n on the grid of
    ``image_hu``; array axes left-right, posterior-anterior, inferior-superior; the units
    together are the spine). ``anterior_sign`` is +1 where axis 1 points anteriorly
    (RAS arrays), -1 where it points posteriorly (LPS)."""
    count = int(units.max(initial=0))
    contact = np.zeros(count + 1)
    spine = units > 0
    if count == 0:
        return contact
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    voxel_mm3 = float(np.prod(spacing))
    candidates = (
        (image_hu > RIB_HU)
        & ~ndimage.binary_dilation(spine)
        & _behind_bodies(spine, spacing, anterior_sign)
        & _off_midline(spine, spacing)
    )
    pieces, _ = ndimage.label(candidates, structure=_CUBE)
    for number, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is None:
            continue
        across = (box[0].stop - box[0].start) * spacing[0]
        along = (box[2].stop - box[2].start) * spacing[2]
        piece = pieces[box] == number
        if (
            int(piece.sum()) * voxel_mm3 < RIB_MIN_MM3
            or across < RIB_SPAN_MM
            or across < RIB_SPAN_RATIO * along
        ):
            continue
        grown = tuple(slice(max(0, s.start - CONTACT_VOXELS), s.stop + CONTACT_VOXELS) for s in box)
        reach = ndimage.binary_dilation(pieces[grown] == number, iterations=CONTACT_VOXELS)
        touched = units[grown][reach]
        contact += np.bincount(touched[touched > 0], minlength=count + 1)[: count + 1] * voxel_mm3
    return contact


def _plane_means(
    spine: NDArray[np.bool_], axis: int, min_share: float = 0.0
) -> NDArray[np.float64]:
    """Per axial plane, the mean index of the spine's voxels along ``axis`` (0 left-right,
    1 front-back), from the planes holding at least ``min_share`` of the median plane's
    spine voxels, interpolated across the others."""
    per_plane = spine.sum(axis=(0, 1))
    shape = [1, 1, 1]
    shape[axis] = spine.shape[axis]
    index = np.arange(spine.shape[axis], dtype=np.float64).reshape(shape)
    mean = (spine * index).sum(axis=(0, 1)) / np.maximum(per_plane, 1)
    planes = np.arange(spine.shape[2])
    used = per_plane > max(0.0, min_share * float(np.median(per_plane[per_plane > 0])))
    out: NDArray[np.float64] = np.interp(planes, planes[used], mean[used])
    return out


def _off_midline(spine: NDArray[np.bool_], spacing: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Voxels more than MIDLINE_MM from the spine's midline (per axial plane: the mean
    left-right position of the spine's voxels, from the planes with at least half the
    median plane's spine; a plane with a stray piece of arch would move it aside)."""
    side = np.arange(spine.shape[0], dtype=np.float64)
    offset = np.abs(side[:, None] - _plane_means(spine, 0, 0.5)[None, :]) * spacing[0]
    off: NDArray[np.bool_] = np.broadcast_to((offset > MIDLINE_MM)[:, None, :], spine.shape)
    return off


def _behind_bodies(
    spine: NDArray[np.bool_], spacing: NDArray[np.float64], anterior_sign: int
) -> NDArray[np.bool_]:
    """Voxels within RIB_REACH_MM of the spine's box from side to side and behind its middle
    (per axial plane: the mean front-back position of the spine's voxels, interpolated
    across planes without any)."""
    box = ndimage.find_objects(spine.astype(np.uint8))[0]
    assert box is not None
    margin = round(RIB_REACH_MM / spacing[0])
    keep = np.zeros(spine.shape, dtype=bool)
    lateral = slice(max(0, box[0].start - margin), box[0].stop + margin)
    front_back = np.arange(spine.shape[1], dtype=np.float64)
    middle = _plane_means(spine, 1)
    # the spine's middle, arches included, lies behind its bodies' middle: three voxels of
    # slack keep the rib heads, which meet the bodies' back half
    behind = anterior_sign * (front_back[:, None] - middle[None, :]) <= 3.0
    keep[lateral] = behind[None, :, :]
    return keep
