"""Training batches from a pool of cases that is refreshed as training goes on.

Generated phantoms are costly, so a pool of ``pool_size`` prepared cases is kept and one case
is replaced every ``refresh_every`` steps. Cases are drawn from the configured sources in a
seeded order; each distributed rank draws its own disjoint share.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from models.networks import MORPHOLOGIES
from models.preprocessing import PreprocessingSpec, grader_patch, vertebra_centre_voxel
from spinescreen.errors import ConfigError
from training.config import SourceConfig
from training.datasets import Case, CaseSource, PairFolderSource, PhantomSource, VerSeSource
from training.datasets.synthetic import SyntheticSource
from training.transforms import (
    PrepareSegmentationd,
    grader_augmentation,
    segmentation_augmentation,
)

log = logging.getLogger(__name__)
CENTRE_JITTER_MM = 3.0
# At run time the grader's mask channel is the outline network's drawing, not the phantom's
# exact shape: it fills an end plate's central depression (a biconcave grade 3 T7 with a true
# Hm of 9.2 mm drawn as a box, Hm 16.3 mm: phantom seed 4) and moves edges by a voxel. A
# grader trained on exact masks may take the mask for the easy cue (it gave that box
# P(grade >= 2) 0.01). ``optim.drawn_masks`` of a grader config draws that share of the
# training masks as a network would (end plate dips filled up to MASK_FILL_VOXELS deep, and /
# or one voxel dilated or eroded), so the image must carry the grade. Off in the shipped
# recipe: a 1000-step fine-tune of the shipped grader at 0.7 lowered its own grade >= 2 AUC
# on seeds 0-29 from 0.98 to 0.94 (docs/training-history.md).
MASK_FILL_VOXELS = (1, 6)  # at the grader's 1.25 mm: up to 7.5 mm
MASK_RIM_REACH_VOXELS = 16  # 20 mm: from the middle of a lumbar end plate to its rim


def open_source(config: SourceConfig) -> CaseSource:
    """The dataset a source entry names."""
    if config.kind == "phantoms":
        return PhantomSource(config.first_seed, config.count, config.params)
    if config.kind == "synthetic":
        return SyntheticSource(config.count, config.first_seed, **config.params)
    if config.root is None:
        raise ConfigError(f"dataset kind '{config.kind}' needs 'root' (the dataset folder)")
    if config.kind == "verse":
        return VerSeSource(config.root)
    if config.kind == "ctspine1k":
        return PairFolderSource(config.root, "ctspine1k", label_suffix="_seg.nii.gz")
    return PairFolderSource(config.root)


class CaseStream:
    """Endless, seeded, rank-disjoint stream of cases over several sources."""

    def __init__(self, sources: Sequence[CaseSource], seed: int, rank: int, world: int) -> None:
        self.items = [(s, i) for s in sources for i in range(len(s))]
        if not self.items:
            raise ConfigError("the training data is empty: add a source with cases")
        self.rng = np.random.default_rng(seed + 7919 * rank)
        self.rank, self.world = rank, world
        self.order: list[int] = []

    def next(self) -> Case:
        if not self.order:
            perm = self.rng.permutation(len(self.items))
            self.order = [int(i) for i in perm if i % self.world == self.rank] or [int(perm[0])]
        source, index = self.items[self.order.pop()]
        return source.load(index)


@dataclass
class GradeSample:
    patch: NDArray[np.float32]  # (2, *patch_size)
    grade: int
    morphology: int


def grade_samples(
    case: Case, spec: PreprocessingSpec, rng: np.random.Generator, drawn_masks: float = 0.0
) -> list[GradeSample]:
    """Patches of every complete vertebra with a known grade, centres jittered a little; a
    share ``drawn_masks`` of their masks drawn as a network would (``drawn_like_a_network``)."""
    subregions = case.subregions if case.subregions is not None else case.vertebrae * 0 + 1
    samples = []
    present = set(np.unique(case.vertebrae).tolist())
    for label, grade in case.grades.items():
        if label not in present or not case.complete.get(label, True):
            continue
        centre = vertebra_centre_voxel(case.vertebrae, subregions, label)
        centre = centre + rng.normal(0, CENTRE_JITTER_MM, 3) / np.array(case.spacing_mm)
        patch = grader_patch(case.image_hu, case.vertebrae, label, centre, case.spacing_mm, spec)
        if drawn_masks and rng.random() < drawn_masks:
            patch[1] = drawn_like_a_network(patch[1] > 0.5, rng)
        morphology = case.morphologies.get(label, "normal")
        samples.append(GradeSample(patch, grade, MORPHOLOGIES.index(morphology)))
    return samples


def drawn_like_a_network(mask: NDArray[np.bool_], rng: np.random.Generator) -> NDArray[np.float32]:
    """``mask`` as a segmentation network tends to draw it: the dips of its end plates filled
    along the spine (the last patch axis: a column is filled as far as its neighbours within
    MASK_RIM_REACH_VOXELS reach, the rim of the end plate) up to a random depth in
    MASK_FILL_VOXELS, then, half the time, one voxel dilated or eroded."""
    depth = int(rng.integers(MASK_FILL_VOXELS[0], MASK_FILL_VOXELS[1] + 1))
    present = mask.any(axis=-1, keepdims=True)
    index = np.arange(mask.shape[-1])
    # a column's reach: the furthest its neighbours (the end plate's rim) reach
    window = (2 * MASK_RIM_REACH_VOXELS + 1,) * (mask.ndim - 1) + (1,)
    first = ndimage.minimum_filter(
        np.where(mask, index, mask.shape[-1]).min(-1, keepdims=True), window
    )
    last = ndimage.maximum_filter(np.where(mask, index, -1).max(-1, keepdims=True), window)
    spanned = present & (index >= first) & (index <= last)
    near = ndimage.distance_transform_edt(~mask) <= depth
    out = mask | (spanned & near)
    if rng.random() < 0.5:
        change = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
        out = change(out, ndimage.generate_binary_structure(3, 1))
    drawn: NDArray[np.float32] = np.asarray(out, dtype=np.float32)
    return drawn


class SegmentationBatches:
    """Batches {"image", "vertebra", "subregion"} of random crops from the pool."""

    def __init__(self, stream: CaseStream, spec: PreprocessingSpec, pool_size: int, seed: int):
        self.stream, self.prepare = stream, PrepareSegmentationd(spec)
        self.augment = segmentation_augmentation(spec, samples=1)
        self.augment.set_random_state(seed)
        self.pool = [self._prepared() for _ in range(pool_size)]
        self.rng = np.random.default_rng(seed)

    def _prepared(self) -> dict[Any, Any]:
        return self.prepare({"case": self.stream.next()})

    def refresh(self) -> None:
        self.pool[int(self.rng.integers(len(self.pool)))] = self._prepared()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        items = []
        for _ in range(size):
            prepared = self.pool[int(self.rng.integers(len(self.pool)))]
            items.append(self.augment(dict(prepared))[0])
        return {k: torch.stack([torch.as_tensor(i[k]) for i in items]) for k in items[0]}


class GraderBatches:
    """Batches {"patch", "grade", "morphology"}, half of each batch fractured when possible."""

    def __init__(
        self,
        stream: CaseStream,
        spec: PreprocessingSpec,
        pool_size: int,
        seed: int,
        drawn_masks: float = 0.0,
    ):
        self.stream, self.spec, self.drawn_masks = stream, spec, drawn_masks
        self.rng = np.random.default_rng(seed)
        self.augment = grader_augmentation()
        self.augment.set_random_state(seed)
        self.pool = [self._samples() for _ in range(pool_size)]

    def _samples(self) -> list[GradeSample]:
        return grade_samples(self.stream.next(), self.spec, self.rng, self.drawn_masks)

    def refresh(self) -> None:
        self.pool[int(self.rng.integers(len(self.pool)))] = self._samples()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        flat = [s for samples in self.pool for s in samples]
        if not flat:
            raise ConfigError("no graded vertebrae in the training pool: the data has no grades")
        fractured = [s for s in flat if s.grade > 0]
        picks = []
        for n in range(size):
            group = fractured if fractured and n % 2 == 1 else flat
            picks.append(group[int(self.rng.integers(len(group)))])
        patches = [self.augment({"patch": torch.from_numpy(s.patch)})["patch"] for s in picks]
        return {
            "patch": torch.stack([torch.as_tensor(p) for p in patches]).float(),
            "grade": torch.tensor([s.grade for s in picks]),
            "morphology": torch.tensor([s.morphology for s in picks]),
        }
