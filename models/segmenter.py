"""Vertebra segmentation: RAS HU volume -> VerSe label map and body/posterior sub-regions.

Two stages, as the best VerSe methods do it (Payer et al. 2020: coarse spine localisation and
identification, then per-vertebra segmentation at fine resolution):

1. the *segmenter* (3 mm, the whole volume) finds the vertebrae and names their levels; the
   names are made a contiguous sequence by models/labelling.py;
2. the optional *outline* model (1.5 mm, a box around the spine the first stage found) draws
   the vertebra outline and the body / posterior-elements split. At 3 mm a disc is one or two
   voxels and an end plate's position is uncertain by a voxel, which is 3 mm of a 25 mm body
   height; at 1.5 mm the discs stay open and the end plates land within a millimetre.

With the outline, the vertebrae are its bodies, cut at the discs along the spine's centre
line, their posterior elements grown on from them (models/bodies.py); the first stage's
level probabilities inside each then name them as a sequence (models/labelling.py). Without
an outline model the first stage's own probabilities draw the outline and its level
argmax, cut into connected pieces, makes the units."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.inferers.utils import sliding_window_inference
from numpy.typing import NDArray
from scipy import ndimage

from models.backends import Backend
from models.bodies import body_units, grow_through
from models.card import ModelCard
from models.labelling import (
    MIN_UNIT_MM3,
    RIB_CONTACT_MM3,
    contiguous_labels,
    fill_labels,
    name_units,
    reads_beyond,
)
from models.networks import VERTEBRA_LABELS, split_segmenter_logits
from models.preprocessing import Spacing, nearest_indices, reorient, segmentation_input
from models.ribs import RIB_HU, rib_contact
from spinescreen.errors import ModelError

log = logging.getLogger(__name__)
SLIDING_WINDOW_OVERLAP = 0.25
# Inference window on the model grid: at 3 mm a whole abdominal CT fits in one pass, which
# costs less than overlapping training-sized windows (the UNet is fully convolutional and
# uses batch norm, so its output does not depend on the window size).
INFERENCE_WINDOW = (160, 160, 160)


@dataclass(frozen=True)
class SegmentationResult:
    """Label maps on the input grid (same shape and axis order as the input image).

    ``vertebrae``: VerSe labels (1-7 C, 8-19 T, 20-25 L, 26 sacrum, 28 T13), 0 background.
    ``subregions``: 1 vertebral body, 2 posterior elements, 0 background.
    ``confidence``: per VerSe label, the mean winning-class probability inside the vertebra.
    ``rib_bearing``: the VerSe labels of the vertebrae ribs touch (models/ribs.py); None
    where ribs were not looked for (the outline stage did not run, or the input's intensity
    window leaves out bone).
    """

    vertebrae: NDArray[np.uint8]
    subregions: NDArray[np.uint8]
    confidence: dict[int, float] = field(default_factory=dict)
    rib_bearing: frozenset[int] | None = None


# Output-grid box -> (3, *outline grid) outline probabilities (see ``Outline.probabilities``).
OutlineProbabilities = Callable[[tuple[slice, ...]], NDArray[np.float32]]


class Outline:
    """The second stage: vertebra outline and sub-regions at a fine spacing (no levels)."""

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        if card.kind != "outline":
            raise ModelError(f"model card {card.name} is a {card.kind}, not an outline model")
        self.card = card
        self.backend = backend

    def probabilities(
        self, image: NDArray[np.floating], spacing_mm: Spacing
    ) -> NDArray[np.float32]:
        """(3, *model grid) probabilities of background, body and posterior elements for a
        float32 HU block already in its card's array order (``Segmenter.segment`` reorients
        once for both stages), on the model's own grid."""
        spec = self.card.preprocessing
        x = segmentation_input(image.astype(np.float32, copy=False), spacing_mm, spec)
        logits = _sliding_window(x, self.backend, spec.patch_size)
        probs: NDArray[np.float32] = torch.softmax(logits[0].float(), dim=0).numpy()
        return probs


class Segmenter:
    """Runs the segmentation network(s) with MONAI sliding-window inference."""

    def __init__(
        self,
        card: ModelCard,
        backend: Backend,
        outline: Outline | None = None,
        mirror: bool = False,
    ) -> None:
        if card.kind != "segmenter":
            raise ModelError(f"model card {card.name} is a {card.kind}, not a segmenter")
        if outline is not None and outline.card.orientation != card.orientation:
            raise ModelError(
                f"the outline model {outline.card.name} expects {outline.card.orientation} "
                f"arrays, the segmenter {card.name} {card.orientation}: export both from "
                "runs with the same preprocessing orientation"
            )
        self.card = card
        self.backend = backend
        self.outline = outline
        self.mirror = mirror

    @property
    def cards(self) -> list[ModelCard]:
        """The cards of every network this segmenter runs (first stage first)."""
        return [self.card] + ([self.outline.card] if self.outline else [])

    def segment(self, image: NDArray[np.floating], spacing_mm: Spacing) -> SegmentationResult:
        """Segment a float32 HU volume in RAS+ axis order at any spacing."""
        if image.ndim != 3:
            raise ModelError(f"segmenter expects a 3D volume, got shape {image.shape}")
        started = time.perf_counter()
        orientation = self.card.orientation
        image = reorient(image, orientation)  # the array order the networks were trained on
        x = segmentation_input(
            image.astype(np.float32, copy=False), spacing_mm, self.card.preprocessing
        )
        logits = _sliding_window(x, self.backend, self.card.preprocessing.patch_size)
        if self.mirror:
            logits = _mirrored_mean(logits, x, self.backend, self.card.preprocessing.patch_size)
        outline: OutlineProbabilities | None = None
        if self.outline is not None:
            stage = self.outline

            def outline(box: tuple[slice, ...]) -> NDArray[np.float32]:
                return stage.probabilities(image[box], spacing_mm)

        low, high = self.card.preprocessing.window_hu
        hu = low + (high - low) * x[0, 0].numpy() if low < RIB_HU < high else None
        decoded = decode_segmentation(
            logits,
            image.shape,
            self.card.preprocessing.spacing_mm,
            outline,
            image_hu=hu,  # the windowed input in HU again: the rib cue's bone threshold
            anterior_sign=1 if orientation[1] == "A" else -1,
        )
        result = SegmentationResult(
            np.ascontiguousarray(reorient(decoded.vertebrae, orientation)),
            np.ascontiguousarray(reorient(decoded.subregions, orientation)),
            decoded.confidence,
            decoded.rib_bearing,
        )
        log.info(
            "segmented %s voxels (model grid %s) in %.1f s: %d vertebrae",
            image.shape,
            tuple(x.shape[2:]),
            time.perf_counter() - started,
            len(result.confidence),
        )
        return result


def _sliding_window(x: torch.Tensor, backend: Backend, patch: tuple[int, int, int]) -> torch.Tensor:
    window = inference_window(tuple(x.shape[2:]), patch)
    if all(n <= w for n, w in zip(x.shape[2:], window, strict=True)):
        return _one_window(x, backend, window)
    with torch.inference_mode():
        logits = sliding_window_inference(
            x,
            roi_size=window,
            sw_batch_size=1,
            predictor=backend,
            overlap=SLIDING_WINDOW_OVERLAP,
            mode="gaussian",
        )
    assert isinstance(logits, torch.Tensor)
    return logits


def _mirrored_mean(
    logits: torch.Tensor, x: torch.Tensor, backend: Backend, patch: tuple[int, int, int]
) -> torch.Tensor:
    """``logits`` averaged with the network's output on the left-right mirror of ``x``
    (mirrored back): test-time augmentation as nnU-Net does it, a second look where the
    level evidence is least sure (the first rib out of view, a slab of thoracic spine). On
    the phantoms it helped one first-stage network and hurt another (README), hence
    ``models.mirror`` is off by default. Axis 0 is left-right in both array orders a card
    may name (RAS, LPS)."""
    mirrored = _sliding_window(torch.flip(x, dims=[2]), backend, patch)
    with torch.inference_mode():
        logits += torch.flip(mirrored, dims=[2])
        logits /= 2
    return logits


def _one_window(x: torch.Tensor, backend: Backend, window: tuple[int, ...]) -> torch.Tensor:
    """The network over a grid that fits one window: padded as MONAI's sliding window pads
    it (zeros, split evenly), run once, cropped back. The same logits as
    ``sliding_window_inference`` with one window (its Gaussian weight divides out) without
    its output and count buffers: a whole 3 mm CT's output (31 channels) is about 0.3 GB,
    and this pass sets the analysis's memory peak."""
    pad: list[int] = []
    for n, w in zip(reversed(x.shape[2:]), reversed(window), strict=True):
        pad += [(w - n) // 2, w - n - (w - n) // 2]
    with torch.inference_mode():
        logits = backend(torch.nn.functional.pad(x, pad) if any(pad) else x)
    crop = tuple(slice(pad[2 * k], pad[2 * k] + n) for k, n in enumerate(reversed(x.shape[2:])))
    # Back on the input's device, as sliding_window_inference returns it (a torch backend on
    # CUDA answers on the GPU).
    return logits[(..., *reversed(crop))].to(x.device)


def inference_window(grid: tuple[int, ...], patch: tuple[int, int, int]) -> tuple[int, ...]:
    """Window covering the whole grid up to INFERENCE_WINDOW, never below the training patch;
    a multiple of 16 so the UNet's down- and up-sampling line up."""
    return tuple(
        max(p, min(limit, -(-n // 16) * 16))
        for n, p, limit in zip(grid, patch, INFERENCE_WINDOW, strict=True)
    )


def decode_segmentation(
    logits: torch.Tensor,
    shape: tuple[int, ...] | None = None,
    model_spacing_mm: Spacing = (3.0, 3.0, 3.0),
    outline: OutlineProbabilities | None = None,
    image_hu: NDArray[np.floating] | None = None,
    anterior_sign: int = 1,
) -> SegmentationResult:
    """Label maps on a grid of ``shape`` (default: the model grid) from (1, C, X, Y, Z) logits.

    With ``outline`` (the second stage, called with the output-grid box around what this
    stage found) see ``_decode_outline``; ``image_hu`` (the model grid's HU, its axis 1
    pointing anteriorly where ``anterior_sign`` is +1) then tells the labelling which units
    bear ribs (models/ribs.py). Without it, levels are made a contiguous sequence
    (models/labelling.py) on the model grid, and the outline and the body / posterior split
    are this stage's class probabilities interpolated linearly onto the output grid
    (sub-voxel edges: a nearest-neighbour upsampling of 3 mm labels alone loses about 0.1
    Dice on a 1.5 mm grid); which vertebra an output voxel belongs to comes from the nearest
    model voxel."""
    vert_logits, sub_logits = split_segmenter_logits(logits.float())
    probs = torch.softmax(vert_logits[0], dim=0).numpy()
    model_shape = probs.shape[1:]
    shape = tuple(shape or model_shape)
    vertebrae = np.zeros(shape, dtype=np.uint8)
    subregions = np.zeros(shape, dtype=np.uint8)
    voxel_mm3 = float(np.prod(model_spacing_mm))
    found = _without_specks(probs[0] < 0.5, MIN_UNIT_MM3 / voxel_mm3)
    if not found.any():
        return SegmentationResult(vertebrae, subregions, {})
    # The box (on both grids) around what the first stage found, specks too small to be a
    # vertebra left out, with a margin of 3 model voxels for the outline to draw what it
    # missed.
    model_box = _box(ndimage.binary_dilation(found, iterations=2), model_shape, margin=1)
    scale = [m / n for m, n in zip(model_shape, shape, strict=True)]
    out_box = tuple(
        slice(max(0, int(b.start / s) - 1), min(n, int(np.ceil(b.stop / s)) + 1))
        for b, s, n in zip(model_box, scale, shape, strict=True)
    )
    if outline is not None:
        ribs = None if image_hu is None else (image_hu, anterior_sign)
        return _decode_outline(probs, outline(out_box), shape, model_spacing_mm, out_box, ribs)
    starts = [b.start for b in model_box]
    fine = [np.arange(b.start, b.stop) for b in out_box]

    def up(array: NDArray[np.floating]) -> NDArray[np.float32]:
        return upsample_linear(array[model_box], starts, fine, scale)

    foreground = up(1.0 - probs[0]) > 0.5
    sub_probs = torch.softmax(sub_logits[0], dim=0).numpy()  # the outline stage brings its own
    body = up(sub_probs[1] - sub_probs[2]) >= 0.0  # linear: the same as comparing both
    coarse, confidence = contiguous_labels(probs, VERTEBRA_LABELS, voxel_mm3=voxel_mm3)
    coarse = keep_largest_components(coarse)
    confidence = {k: v for k, v in confidence.items() if (coarse == k).any()}
    if not coarse.any():
        return SegmentationResult(vertebrae, subregions, {})
    grown = fill_labels(coarse, ndimage.binary_dilation(coarse > 0, iterations=2))
    near = [
        np.clip(nearest_indices(m, n)[f] - b.start, 0, b.stop - b.start - 1)
        for n, m, f, b in zip(shape, model_shape, fine, model_box, strict=True)
    ]
    labels = grown[model_box][np.ix_(*near)] * foreground
    vertebrae[out_box] = labels
    subregions[out_box] = np.where(labels > 0, np.where(body, 1, 2), 0)
    return SegmentationResult(vertebrae, subregions, confidence)


def _decode_outline(
    probs: NDArray[np.float32],
    outline: NDArray[np.float32],
    shape: tuple[int, ...],
    model_spacing_mm: Spacing,
    out_box: tuple[slice, ...],
    ribs: tuple[NDArray[np.floating], int] | None = None,
) -> SegmentationResult:
    """Label maps from the outline stage's probabilities ``outline`` (3, *outline grid) over
    ``out_box`` of the output grid: units from its vertebral bodies (models/bodies.py), named
    by the first stage's level probabilities ``probs`` (C, *model grid) at their voxels and,
    with ``ribs`` (model-grid HU, anterior sign), by the ribs they bear."""
    vertebrae = np.zeros(shape, dtype=np.uint8)
    subregions = np.zeros(shape, dtype=np.uint8)
    background, body_p, posterior_p = outline
    fine_shape = background.shape
    out_shape = tuple(b.stop - b.start for b in out_box)
    model_shape = probs.shape[1:]
    # outline voxel -> nearest model voxel, through the output grid both are aligned to
    to_model = [
        np.clip(
            np.floor((b.start + (np.arange(f) + 0.5) * (n / f)) * (m / size)).astype(np.intp),
            0,
            m - 1,
        )
        for f, n, b, m, size in zip(fine_shape, out_shape, out_box, model_shape, shape, strict=True)
    ]
    vertebra = background < 0.5
    # the outline grid's spacing, from the model grid's through the output grid
    a, b, c = (
        s * (m / size) * (n / f)
        for s, m, size, n, f in zip(
            model_spacing_mm, model_shape, shape, out_shape, fine_shape, strict=True
        )
    )
    hosts: dict[int, tuple[int, int, int]] = {}
    units = body_units(vertebra, body_p, (a, b, c), hosts=hosts)
    voxels = np.nonzero(units)
    at = tuple(index[axis] for index, axis in zip(to_model, voxels, strict=True))
    levels = probs[(slice(None), *at)]
    contact = None
    if ribs is not None:
        # the units on the model grid (an outline voxel in eight lands on each at 1.5 mm)
        coarse = np.zeros(model_shape, dtype=np.int32)
        coarse[np.ix_(*to_model)] = units
        contact = np.zeros(int(units.max(initial=0)) + 1)
        found = rib_contact(ribs[0], coarse, model_spacing_mm, ribs[1])
        contact[: len(found)] = found
    labels, confidence, units, contact = _name_with_slivers(units, levels, contact, hosts)
    if not labels.any():
        return SegmentationResult(vertebrae, subregions, {})
    bearing = None
    if contact is not None:  # the contact the naming used (a joined sliver's is its host's)
        touched = contact[units[voxels]] >= RIB_CONTACT_MM3
        bearing = frozenset(int(v) for v in np.unique(labels[voxels][touched]))
    labels = grow_through(labels, np.ones(labels.shape, dtype=bool), 2)
    fine_out = [np.arange(n) for n in out_shape]
    scale = [f / n for f, n in zip(fine_shape, out_shape, strict=True)]
    foreground = upsample_linear(1.0 - 2.0 * background, [0, 0, 0], fine_out, scale) > 0.0
    body_out = upsample_linear(body_p - posterior_p, [0, 0, 0], fine_out, scale) >= 0.0
    near = [nearest_indices(f, n) for f, n in zip(fine_shape, out_shape, strict=True)]
    out = labels[np.ix_(*near)] * foreground
    vertebrae[out_box] = out
    subregions[out_box] = np.where(out > 0, np.where(body_out, 1, 2), 0)
    return SegmentationResult(vertebrae, subregions, confidence, bearing)


def _name_with_slivers(
    units: NDArray[np.int32],
    levels: NDArray[np.float32],
    contact: NDArray[np.float64] | None,
    hosts: dict[int, tuple[int, int, int]],
) -> tuple[NDArray[np.uint8], dict[int, float], NDArray[np.int32], NDArray[np.float64] | None]:
    """Name ``units`` (``levels``: the level probabilities at their voxels, ``contact``: rib
    contact per unit) with each sliver in ``hosts`` joined to its host (the vertebra whose
    body the grid's end cuts, or the unit that holds it; models/bodies.py); except that a
    sliver whose own level evidence reads beyond the name its host gets is the vertebra
    beyond the field of view (its spinous process reaching down over the first body; phantom
    seeds 42, 43, 46, 48 and 55 of 30-59): all such slivers at one end are that one
    vertebra, joined to the sliver already standing for it where there is one, as long as
    the other units keep their names (else their evidence renamed the spine, as on seed 37).
    The cut vertebra's own arch reads as its body is named (seed 30, the TPTBox crop).
    Returns the labels, their confidence, the units named and their rib contact."""
    ids = units[np.nonzero(units)]

    def named(
        apart: set[int],
    ) -> tuple[NDArray[np.uint8], dict[int, float], NDArray[np.int32], NDArray[np.float64] | None]:
        lookup = np.arange(int(units.max(initial=0)) + 1)
        beyond: dict[int, int] = {}  # end -> the unit standing for the vertebra beyond it
        for sliver, (host, end, partner) in sorted(hosts.items()):
            if sliver in apart:
                lookup[sliver] = beyond.setdefault(end, partner or sliver)
            else:
                lookup[sliver] = host
        joined = lookup[units].astype(np.int32)
        merged = None
        if contact is not None:  # a joined sliver's rib contact is its host's
            merged = np.bincount(lookup, contact, minlength=len(lookup)).astype(np.float64)
        labels, confidence = name_units(joined, levels, VERTEBRA_LABELS, rib_contact_mm3=merged)
        return labels, confidence, joined, merged

    first = named(set())
    if not hosts:
        return first
    names = np.zeros(int(units.max(initial=0)) + 1, dtype=np.int64)
    names[ids] = first[0][units > 0]  # each unit's name (np.nonzero order, as ``ids``)
    apart = {
        sliver
        for sliver, (host, end, _partner) in hosts.items()
        if reads_beyond(levels[:, ids == sliver].mean(axis=1), VERTEBRA_LABELS, names[host], end)
    }
    if not apart:
        return first
    second = named(apart)
    kept = np.isin(ids, list(apart), invert=True)
    if np.array_equal(second[0][units > 0][kept], first[0][units > 0][kept]):
        return second
    return first


def upsample_linear(
    array: NDArray[np.floating],
    start: list[int],
    fine: list[NDArray[np.intp]],
    scale: list[float],
) -> NDArray[np.float32]:
    """Linear interpolation of a model-grid block (its first voxel at model index ``start``)
    at output voxels ``fine`` (indices per axis), with ``scale`` = model / output voxels;
    the same voxel-centre convention as ``torch.nn.functional.interpolate`` without
    ``align_corners``, edges held."""
    out = np.asarray(array, dtype=np.float32)
    for axis, (first, indices, factor) in enumerate(zip(start, fine, scale, strict=True)):
        position = np.clip((indices + 0.5) * factor - 0.5 - first, 0.0, out.shape[axis] - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, out.shape[axis] - 1)
        weight = (position - low).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = len(indices)
        weight = weight.reshape(shape)
        out = np.take(out, low, axis=axis) * (1 - weight) + np.take(out, high, axis=axis) * weight
    return out


def _box(mask: NDArray[np.bool_], shape: tuple[int, ...], margin: int) -> tuple[slice, ...]:
    found = np.argwhere(mask)
    low, high = found.min(axis=0) - margin, found.max(axis=0) + 1 + margin
    return tuple(
        slice(max(0, int(a)), min(n, int(b))) for a, b, n in zip(low, high, shape, strict=True)
    )


def _without_specks(mask: NDArray[np.bool_], min_voxels: float) -> NDArray[np.bool_]:
    """``mask`` without its 26-connected pieces smaller than ``min_voxels``."""
    pieces, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return mask
    keep = np.bincount(pieces.ravel()) >= min_voxels
    keep[0] = False
    out: NDArray[np.bool_] = keep[pieces]
    return out


def keep_largest_components(labels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Keep, for each label, only its largest 26-connected component."""
    out = np.zeros_like(labels)
    structure = np.ones((3, 3, 3), dtype=bool)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        components, count = ndimage.label(mask, structure=structure)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            mask = components == (int(np.argmax(sizes)) + 1)
        out[box][mask] = index
    return out
