"""Runtime inference: sliding-window segmenter and grader through both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_grader, load_segmenter
from models.networks import VERTEBRA_LABELS
from models.preprocessing import nearest_indices, resample_labels, target_shape
from models.segmenter import (
    _mirrored_mean,
    _sliding_window,
    decode_segmentation,
    inference_window,
    keep_largest_components,
)
from models.settings import ModelSettings
from training.config import parse_training_config
from training.datasets.synthetic import SyntheticSource
from training.export import export_checkpoint
from training.loop import train

from .test_training_loop import tiny_config


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    for model in ("segmenter", "outline", "grader"):
        checkpoint = train(parse_training_config(tiny_config(model, root / f"run-{model}")))
        export_checkpoint(checkpoint, root / model)
    return root


def test_an_outline_card_beside_the_segmenter_becomes_its_second_stage(weights: Path) -> None:
    segmenter = load_segmenter(ModelSettings(weights_dir=weights, threads=1))
    assert segmenter.outline is not None
    assert [c.kind for c in segmenter.cards] == ["segmenter", "outline"]
    assert segmenter.outline.card.architecture["outputs"] == "outline"
    image = SyntheticSource(1, shape=(30, 26, 50)).load(0).image_hu
    block = image[5:25, :, 10:40]
    probabilities = segmenter.outline.probabilities(block, (1.5, 1.7, 2.5))
    assert probabilities.shape[0] == 3
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    spacing = segmenter.outline.card.preprocessing.spacing_mm
    assert probabilities.shape[1:] == target_shape(block.shape, (1.5, 1.7, 2.5), spacing)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_segmenter_returns_labels_on_the_input_grid(weights: Path, backend: str) -> None:
    settings = ModelSettings(backend=backend, weights_dir=weights, threads=1)  # type: ignore[arg-type]
    image = SyntheticSource(1, shape=(30, 26, 50)).load(0).image_hu
    result = load_segmenter(settings).segment(image, (1.5, 1.7, 2.5))
    assert result.vertebrae.shape == image.shape and result.vertebrae.dtype == np.uint8
    assert result.subregions.shape == image.shape
    assert set(np.unique(result.vertebrae)) <= set(VERTEBRA_LABELS)
    assert set(np.unique(result.subregions)) <= {0, 1, 2}
    assert set(result.confidence) == set(np.unique(result.vertebrae)) - {0}
    assert all(0.0 <= c <= 1.0 for c in result.confidence.values())


def test_backends_agree_on_the_grade(weights: Path) -> None:
    case = SyntheticSource(1).load(0)
    grades = []
    for backend in ("onnxruntime", "torch"):
        settings = ModelSettings(backend=backend, weights_dir=weights, threads=1)  # type: ignore[arg-type]
        grader = load_grader(settings)
        grades.append(
            grader.grade(case.image_hu, case.vertebrae, case.subregions, 19, case.spacing_mm)
        )
    first, second = grades
    assert sum(first.grade_probabilities) == pytest.approx(1.0)
    assert first.fracture_probability == pytest.approx(1.0 - first.grade_probabilities[0])
    assert set(first.morphology_probabilities) == {"normal", "wedge", "biconcave", "crush"}
    assert np.allclose(first.grade_probabilities, second.grade_probabilities, atol=1e-4), grades


def test_resampling_round_trip_keeps_a_labelled_box() -> None:
    labels = np.zeros((40, 40, 40), dtype=np.uint8)
    labels[8:32, 8:32, 8:32] = 20
    shape = target_shape(labels.shape, (1.0, 1.0, 1.0), (2.0, 2.0, 2.0))
    assert shape == (20, 20, 20)
    back = resample_labels(resample_labels(labels, shape), labels.shape)
    assert back.shape == labels.shape
    assert np.array_equal(back, labels), "a box on even voxel boundaries must survive 2x and back"
    assert list(nearest_indices(4, 2)) == [1, 3]


def test_largest_component_per_label_drops_islands() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:5, 1:5, 1:5] = 20  # 64 voxels
    labels[8, 8, 8] = 20  # island
    labels[6:8, 1:3, 1:3] = 21
    kept = keep_largest_components(labels)
    assert kept[8, 8, 8] == 0
    assert int((kept == 20).sum()) == 64 and int((kept == 21).sum()) == 8


def test_decode_maps_classes_to_verse_labels() -> None:
    logits = torch.zeros((1, len(VERTEBRA_LABELS) + 3, 4, 4, 4))
    logits[0, VERTEBRA_LABELS.index(28), :2] = 10.0  # T13, sure (it is rare)
    logits[0, 0, 2:] = 5.0  # background
    logits[0, len(VERTEBRA_LABELS) + 2, :2] = 5.0  # posterior elements
    result = decode_segmentation(logits, model_spacing_mm=(10.0, 10.0, 10.0))  # 32 cm3
    vertebrae, subregions, confidence = result.vertebrae, result.subregions, result.confidence
    assert set(np.unique(vertebrae)) == {0, 28}
    assert (subregions[:2] == 2).all() and (subregions[2:] == 0).all()
    expected = np.exp(10.0) / (np.exp(10.0) + len(VERTEBRA_LABELS) - 1)
    assert confidence[28] == pytest.approx(expected, rel=1e-5), confidence


def test_the_outline_stage_draws_the_outline_and_the_first_stage_names_it() -> None:
    logits = torch.zeros((1, len(VERTEBRA_LABELS) + 3, 4, 4, 4))
    logits[0, VERTEBRA_LABELS.index(20), :2] = 5.0  # L1 in the first two model planes
    logits[0, 0, 2:] = 5.0
    boxes = []

    def outline(box: tuple[slice, ...]) -> np.ndarray:
        boxes.append(box)
        shape = tuple(b.stop - b.start for b in box)
        probabilities = np.zeros((3, *shape), dtype=np.float32)
        probabilities[0] = 1.0
        probabilities[:, :3] = 0.0
        probabilities[1, :3, :4] = 1.0  # vertebra on output planes 0-2 only, narrower than L1:
        probabilities[2, :3, 4:] = 1.0  # body in front, posterior elements behind
        return probabilities

    result = decode_segmentation(logits, (8, 8, 8), (10.0, 10.0, 10.0), outline)
    assert boxes and all(b.start == 0 for b in boxes[0]), boxes
    assert set(np.unique(result.vertebrae[:3])) == {20} and not result.vertebrae[3:].any()
    assert (result.subregions[:3, :4] == 1).all() and (result.subregions[:3, 4:] == 2).all()


def test_inference_window_covers_small_grids_in_one_pass() -> None:
    assert inference_window((137, 137, 107), (64, 64, 64)) == (144, 144, 112)
    assert inference_window((300, 40, 10), (64, 64, 64)) == (160, 64, 64)


class _Module:
    """A torch module as a Backend (the protocol the segmenter runs)."""

    name = "torch"
    device = torch.device("cpu")

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(batch)  # type: ignore[no-any-return]


@pytest.mark.parametrize("grid", [(20, 30, 17), (32, 32, 32), (33, 20, 20), (170, 20, 20)])
def test_a_grid_in_one_window_gives_monais_sliding_window_logits(grid: tuple[int, ...]) -> None:
    """The one-window shortcut (no output buffers) pads, runs and crops as MONAI does; a grid
    wider than one window still goes through MONAI's overlapping windows."""
    from monai.inferers.utils import sliding_window_inference

    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 5, padding=2)
    ).eval()

    x = torch.randn(1, 1, *grid)
    window = inference_window(grid, (16, 16, 16))
    with torch.inference_mode():
        got = _sliding_window(x, _Module(network), (16, 16, 16))
        want = sliding_window_inference(
            x, window, 1, _Module(network), overlap=0.25, mode="gaussian", padding_mode="constant"
        )
    assert got.shape == want.shape == (1, 3, *grid)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_mirrored_level_evidence_is_the_mean_of_both_looks() -> None:
    torch.manual_seed(1)
    network = torch.nn.Conv3d(1, 3, 3, padding=1).eval()

    x = torch.randn(1, 1, 20, 18, 17)
    with torch.inference_mode():
        want = (network(x) + torch.flip(network(torch.flip(x, dims=[2])), dims=[2])) / 2
        logits = _sliding_window(x, _Module(network), (16, 16, 16))
    got = _mirrored_mean(logits, x, _Module(network), (16, 16, 16))
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, network(x).detach(), atol=1e-3)  # the mirror changed it


def test_a_card_in_lps_order_sees_the_array_it_was_trained_on(weights: Path) -> None:
    """Networks trained on LPS-ordered arrays get them at inference, results come back RAS."""
    from dataclasses import replace

    from models.preprocessing import grader_patch, reorient

    settings = ModelSettings(weights_dir=weights, threads=1)
    segmenter = load_segmenter(settings)
    case = SyntheticSource(1, shape=(30, 26, 50)).load(0)
    as_trained = segmenter.segment(case.image_hu, case.spacing_mm)
    for model in [segmenter, *([segmenter.outline] if segmenter.outline else [])]:
        spec = replace(model.card.preprocessing, orientation="LPS")
        model.card = replace(model.card, preprocessing=spec)
    flipped = np.ascontiguousarray(reorient(case.image_hu, "LPS"))
    result = segmenter.segment(flipped, case.spacing_mm)
    np.testing.assert_array_equal(result.vertebrae, reorient(as_trained.vertebrae, "LPS"))
    np.testing.assert_array_equal(result.subregions, reorient(as_trained.subregions, "LPS"))
    spec = load_grader(settings).card.preprocessing
    lps = replace(spec, orientation="LPS")
    centre = np.array([14.3, 12.2, 25.1])  # off the voxel grid: no nearest-neighbour ties
    lps_patch = grader_patch(case.image_hu, case.vertebrae, 19, centre, case.spacing_mm, lps)
    # the same cube sampled from LPS-ordered arrays around the same point
    image, labels = (
        np.ascontiguousarray(reorient(a, "LPS")) for a in (case.image_hu, case.vertebrae)
    )
    mirrored = np.array([image.shape[0] - 1 - centre[0], image.shape[1] - 1 - centre[1], centre[2]])
    expected = grader_patch(image, labels, 19, mirrored, case.spacing_mm, spec)
    np.testing.assert_allclose(lps_patch, expected, atol=1e-5)
