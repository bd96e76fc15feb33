"""Labelling sanity: network level guesses -> one contiguous vertebra sequence."""

from __future__ import annotations

import numpy as np
import torch

from models.labelling import SEQUENCE, contiguous_labels, fill_labels
from models.networks import VERTEBRA_LABELS
from models.segmenter import decode_segmentation, upsample_linear

T10, T11, T12, L1, L2, L3, S = 17, 18, 19, 20, 21, 22, 26


def column(evidence: list[dict[int, float]], gap: int = 2, height: int = 6) -> np.ndarray:
    """(C, 12, 12, Z) probabilities: a column of box vertebrae, the first at the top (head
    = high z), each voxel carrying the given level probabilities (the rest background)."""
    depth = len(evidence) * (height + gap) + gap
    probs = np.zeros((len(VERTEBRA_LABELS), 12, 12, depth), dtype=np.float32)
    probs[0] = 1.0
    for n, levels in enumerate(evidence):
        top = depth - gap - n * (height + gap)
        box = (slice(3, 9), slice(3, 9), slice(top - height, top))
        probs[(slice(None), *box)] = 0.0
        for label, p in levels.items():
            probs[(VERTEBRA_LABELS.index(label), *box)] = p
        probs[(0, *box)] = 1.0 - sum(levels.values())
    return probs


def names_top_down(labels: np.ndarray) -> list[int]:
    present = [int(v) for v in np.unique(labels) if v]
    return sorted(present, key=lambda v: -np.argwhere(labels == v)[:, 2].mean())


def test_a_clean_sequence_keeps_its_levels_and_confidence() -> None:
    labels, confidence = contiguous_labels(
        column([{v: 0.9} for v in (T11, T12, L1, L2)]), VERTEBRA_LABELS
    )
    assert names_top_down(labels) == [T11, T12, L1, L2]
    assert all(abs(c - 0.9) < 1e-6 for c in confidence.values())


def test_a_duplicate_name_is_resolved_by_the_sequence() -> None:
    # The network calls the second body T10 (0.5) rather than T11 (0.4): the order fixes it.
    probs = column([{T10: 0.9}, {T10: 0.5, T11: 0.4}, {T12: 0.9}, {L1: 0.9}, {L2: 0.9}])
    labels, _ = contiguous_labels(probs, VERTEBRA_LABELS)
    assert names_top_down(labels) == [T10, T11, T12, L1, L2]


def test_a_global_off_by_one_follows_the_strong_anchor() -> None:
    # Weak, shifted evidence on four bodies; a confident sacrum below them decides the levels.
    weak = [{T11: 0.35, T12: 0.3}, {T12: 0.35, L1: 0.3}, {L1: 0.35, L2: 0.3}, {L2: 0.35, L3: 0.3}]
    probs = column([*weak, {22: 0.3, 23: 0.3}, {24: 0.9}, {S: 0.95}])
    labels, _ = contiguous_labels(probs, VERTEBRA_LABELS)
    assert names_top_down(labels) == [T12, L1, L2, L3, 23, 24, S]


def test_an_l6_needs_evidence_the_sacrum_counts_up_from() -> None:
    # Five lumbar bodies above the sacrum, the first leaning to L2: L2-L6 would fit the
    # evidence a little better, but six lumbar vertebrae are rare (about 6 %).
    lumbar = [{L1: 0.3, L2: 0.5}, {L2: 0.45, L3: 0.45}, {L3: 0.45, 23: 0.45}]
    probs = column([*lumbar, {23: 0.45, 24: 0.45}, {24: 0.45, 25: 0.45}, {S: 0.95}])
    labels, _ = contiguous_labels(probs, VERTEBRA_LABELS)
    assert names_top_down(labels) == [L1, L2, L3, 23, 24, S]


def test_specks_are_dropped() -> None:
    probs = column([{T12: 0.9}, {L1: 0.9}])
    probs[:, 0, 0, 0] = 0.0
    probs[VERTEBRA_LABELS.index(T10), 0, 0, 0] = 0.9  # a one-voxel speck
    labels, _ = contiguous_labels(probs, VERTEBRA_LABELS)
    assert labels[0, 0, 0] == 0
    assert names_top_down(labels) == [T12, L1]


def test_sequence_order_puts_t13_and_l6_where_they_belong() -> None:
    assert SEQUENCE.index(28) == SEQUENCE.index(T12) + 1 == SEQUENCE.index(L1) - 1
    assert SEQUENCE.index(25) == SEQUENCE.index(24) + 1 and SEQUENCE[-1] == S


def test_fill_labels_extends_to_the_foreground() -> None:
    labels = np.zeros((5, 5, 5), dtype=np.uint8)
    labels[1, 1, 1], labels[3, 3, 3] = 20, 21
    filled = fill_labels(labels, np.ones_like(labels, dtype=bool))
    assert filled[0, 0, 0] == 20 and filled[4, 4, 4] == 21
    near = fill_labels(labels, np.ones_like(labels, dtype=bool), reach=1.0)
    assert near[1, 1, 2] == 20 and near[0, 0, 0] == 0  # 1.73 voxels away: out of reach


def test_linear_upsampling_matches_torch_interpolate() -> None:
    rng = np.random.default_rng(0)
    coarse = rng.random((7, 6, 5)).astype(np.float32)
    fine_shape = (17, 13, 11)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None, None], size=fine_shape, mode="trilinear", align_corners=False
    )[0, 0].numpy()
    scale = [c / f for c, f in zip(coarse.shape, fine_shape, strict=True)]
    fine = [np.arange(n) for n in fine_shape]
    got = upsample_linear(coarse, [0, 0, 0], fine, scale)
    assert np.allclose(got, expected, atol=1e-5)
    # A block of the coarse grid gives the same values on its part of the fine grid.
    part = upsample_linear(coarse[2:6], [2, 0, 0], [np.arange(6, 12), fine[1], fine[2]], scale)
    assert np.allclose(part, expected[6:12], atol=1e-5)


def test_decode_draws_sub_voxel_edges_on_the_output_grid() -> None:
    # A sphere on a 1 mm grid seen at 3 mm: upsampled probabilities give back a round edge.
    grid = np.indices((48, 48, 48)).astype(np.float32)
    sphere = (np.linalg.norm(grid - 23.5, axis=0) < 13.0).astype(np.float32)
    coarse = torch.nn.functional.avg_pool3d(torch.from_numpy(sphere)[None, None], 3)[0, 0]
    logits = torch.full((1, len(VERTEBRA_LABELS) + 3, 16, 16, 16), -10.0)
    logits[0, 0] = torch.log(1.0 - coarse + 1e-4)
    logits[0, VERTEBRA_LABELS.index(L1)] = torch.log(coarse + 1e-4)
    logits[0, len(VERTEBRA_LABELS) + 1] = 0.0  # body
    result = decode_segmentation(logits, (48, 48, 48))
    got = result.vertebrae == L1
    dice = 2 * (got & (sphere > 0)).sum() / (got.sum() + sphere.sum())
    assert dice > 0.97, dice
    assert set(np.unique(result.subregions)) == {0, 1}
