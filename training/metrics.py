"""Evaluation metrics: Dice, VerSe identification (20 mm rule), binary screening statistics,
ROC AUC and the grade confusion matrix. Pure functions on arrays and dictionaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float, float]
IDENTIFICATION_RADIUS_MM = 20.0


def overlap_table(predicted: NDArray[np.integer], truth: NDArray[np.integer]) -> NDArray[np.int64]:
    """Voxel counts ``table[true label, predicted label]`` (one pass over the foreground)."""
    foreground = np.flatnonzero((truth != 0) | (predicted != 0))
    t = truth.ravel()[foreground].astype(np.int64)
    p = predicted.ravel()[foreground].astype(np.int64)
    size = int(max(t.max(initial=0), p.max(initial=0))) + 1
    table: NDArray[np.int64] = np.bincount(t * size + p, minlength=size * size).reshape(size, size)
    return table


def dice_per_label(predicted: NDArray[np.integer], truth: NDArray[np.integer]) -> dict[int, float]:
    """Dice of each label present in ``truth`` (0 when the prediction misses it)."""
    return dice_from_table(overlap_table(predicted, truth))


def any_vertebra_dice(predicted: NDArray[np.integer], truth: NDArray[np.integer]) -> float:
    """Dice of "any vertebra", labels ignored: the outline without the naming."""
    p, t = predicted != 0, truth != 0
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    return 2.0 * int(np.count_nonzero(p & t)) / total if total else 1.0


def best_match(table: NDArray[np.int64], label: int) -> int:
    """The predicted label overlapping true ``label`` most (0 when none does)."""
    if label >= table.shape[0]:
        return 0
    row = table[label, 1:]
    return int(np.argmax(row)) + 1 if row.sum() else 0


def dice_from_table(joint: NDArray[np.int64]) -> dict[int, float]:
    """Dice per true label from an overlap table."""
    size = joint.shape[0]
    true_sizes, predicted_sizes = joint.sum(axis=1), joint.sum(axis=0)
    return {
        label: 2.0 * float(joint[label, label]) / float(true_sizes[label] + predicted_sizes[label])
        for label in range(1, size)
        if true_sizes[label] > 0
    }


def label_centroids_mm(
    labels: NDArray[np.integer], affine: NDArray[np.float64]
) -> dict[int, Point]:
    """Centre of mass of each label, mapped through ``affine`` to millimetres."""
    voxels = np.nonzero(labels)
    values = labels[voxels].astype(np.int64)
    counts = np.bincount(values)
    sums = [np.bincount(values, weights=axis.astype(np.float64)) for axis in voxels]
    points = {}
    for label in np.flatnonzero(counts[1:]) + 1:
        centre = np.array([s[label] / counts[label] for s in sums] + [1.0])
        x, y, z = (affine @ centre)[:3]
        points[int(label)] = (float(x), float(y), float(z))
    return points


@dataclass(frozen=True)
class Identification:
    """Per true vertebra: identified by the 20 mm rule, and distance to its namesake."""

    identified: dict[int, bool]
    localisation_mm: dict[int, float]  # to the predicted centroid of the same label, if any

    @property
    def rate(self) -> float:
        return _mean([float(v) for v in self.identified.values()])

    @property
    def mean_localisation_mm(self) -> float:
        return _mean(list(self.localisation_mm.values()))


def identify(
    predicted: Mapping[int, Point],
    truth: Mapping[int, Point],
    radius_mm: float = IDENTIFICATION_RADIUS_MM,
) -> Identification:
    """VerSe rule: the nearest predicted centroid has the right label and lies within 20 mm."""
    identified, distances = {}, {}
    names = list(predicted)
    points = np.array([predicted[n] for n in names], dtype=np.float64).reshape(-1, 3)
    for label, centre in truth.items():
        if not names:
            identified[label] = False
            continue
        gaps = np.linalg.norm(points - np.asarray(centre), axis=1)
        nearest = int(np.argmin(gaps))
        identified[label] = names[nearest] == label and float(gaps[nearest]) <= radius_mm
        if label in predicted:
            distances[label] = float(np.linalg.norm(np.subtract(predicted[label], centre)))
    return Identification(identified, distances)


@dataclass(frozen=True)
class BinaryStats:
    """Screening statistics at one threshold; NaN where a denominator is zero."""

    tp: int
    fp: int
    tn: int
    fn: int
    auc: float

    @property
    def sensitivity(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def ppv(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float:
        return _ratio(self.tn, self.tn + self.fn)

    def as_dict(self) -> dict[str, float]:
        return {
            "positives": self.tp + self.fn,
            "negatives": self.tn + self.fp,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "ppv": self.ppv,
            "npv": self.npv,
            "auc": self.auc,
        }


def binary_stats(scores: Sequence[float], truth: Sequence[bool], threshold: float) -> BinaryStats:
    """Counts with ``score >= threshold`` called positive, plus the threshold-free AUC."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    called = s >= threshold
    return BinaryStats(
        tp=int(np.sum(called & t)),
        fp=int(np.sum(called & ~t)),
        tn=int(np.sum(~called & ~t)),
        fn=int(np.sum(~called & t)),
        auc=roc_auc(scores, truth),
    )


def roc_auc(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); NaN with one class."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    pos, neg = s[t], s[~t]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def roc_curve(scores: Sequence[float], truth: Sequence[bool]) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) over all thresholds, from (0, 0)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    fpr, tpr = [0.0], [0.0]
    for threshold in np.unique(s)[::-1]:
        called = s >= threshold
        tpr.append(_ratio(int(np.sum(called & t)), int(t.sum())))
        fpr.append(_ratio(int(np.sum(called & ~t)), int((~t).sum())))
    return fpr, tpr


def confusion_matrix(
    true_grades: Sequence[int], predicted_grades: Sequence[int], classes: int = 4
) -> list[list[int]]:
    """Rows: true grade, columns: predicted grade."""
    matrix = np.zeros((classes, classes), dtype=int)
    for t, p in zip(true_grades, predicted_grades, strict=True):
        matrix[int(t), int(p)] += 1
    return [[int(v) for v in row] for row in matrix]


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den else math.nan


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan
