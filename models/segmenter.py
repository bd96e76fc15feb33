"""Vertebra segmentation: RAS HU volume -> VerSe label map and body/posterior sub-regions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.inferers.utils import sliding_window_inference
from numpy.typing import NDArray
from scipy import ndimage

from models.backends import Backend
from models.card import ModelCard
from models.networks import VERTEBRA_LABELS, split_segmenter_logits
from models.preprocessing import Spacing, resample_labels, segmentation_input
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
    """

    vertebrae: NDArray[np.uint8]
    subregions: NDArray[np.uint8]
    confidence: dict[int, float] = field(default_factory=dict)


class Segmenter:
    """Runs the segmentation network with MONAI sliding-window inference."""

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        if card.kind != "segmenter":
            raise ModelError(f"model card {card.name} is a {card.kind}, not a segmenter")
        self.card = card
        self.backend = backend

    def segment(self, image: NDArray[np.floating], spacing_mm: Spacing) -> SegmentationResult:
        """Segment a float32 HU volume in RAS+ axis order at any spacing."""
        if image.ndim != 3:
            raise ModelError(f"segmenter expects a 3D volume, got shape {image.shape}")
        started = time.perf_counter()
        x = segmentation_input(
            image.astype(np.float32, copy=False), spacing_mm, self.card.preprocessing
        )
        with torch.inference_mode():
            logits = sliding_window_inference(
                x,
                roi_size=inference_window(tuple(x.shape[2:]), self.card.preprocessing.patch_size),
                sw_batch_size=1,
                predictor=self.backend,
                overlap=SLIDING_WINDOW_OVERLAP,
                mode="gaussian",
            )
        assert isinstance(logits, torch.Tensor)
        vertebrae, subregions, confidence = decode_segmentation(logits)
        result = SegmentationResult(
            vertebrae=resample_labels(vertebrae, image.shape),
            subregions=resample_labels(subregions, image.shape),
            confidence=confidence,
        )
        log.info(
            "segmented %s voxels (model grid %s) in %.1f s: %d vertebrae",
            image.shape,
            tuple(x.shape[2:]),
            time.perf_counter() - started,
            len(confidence),
        )
        return result


def inference_window(grid: tuple[int, ...], patch: tuple[int, int, int]) -> tuple[int, ...]:
    """Window covering the whole grid up to INFERENCE_WINDOW, never below the training patch;
    a multiple of 16 so the UNet's down- and up-sampling line up."""
    return tuple(
        max(p, min(limit, -(-n // 16) * 16))
        for n, p, limit in zip(grid, patch, INFERENCE_WINDOW, strict=True)
    )


def decode_segmentation(
    logits: torch.Tensor,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], dict[int, float]]:
    """Label maps and per-label confidence from (1, C, X, Y, Z) logits on the model grid."""
    vert_logits, sub_logits = split_segmenter_logits(logits.float())
    probs = torch.softmax(vert_logits[0], dim=0)
    best_prob, best_class = probs.max(dim=0)
    lookup = np.asarray(VERTEBRA_LABELS, dtype=np.uint8)
    vertebrae = keep_largest_components(lookup[best_class.numpy()])
    subregions = sub_logits[0].argmax(dim=0).numpy().astype(np.uint8)
    subregions[vertebrae == 0] = 0
    subregions[(vertebrae > 0) & (subregions == 0)] = 1
    confidence = _label_confidence(vertebrae, best_prob.numpy())
    return vertebrae, subregions, confidence


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


def _label_confidence(
    vertebrae: NDArray[np.uint8], best_prob: NDArray[np.floating]
) -> dict[int, float]:
    present = [int(v) for v in np.unique(vertebrae) if v != 0]
    if not present:
        return {}
    means = ndimage.mean(best_prob, labels=vertebrae, index=present)
    return {label: float(m) for label, m in zip(present, np.atleast_1d(means), strict=True)}
