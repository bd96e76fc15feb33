"""CT phantom generator: determinism, labels consistent with geometry, HU in range."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from training.phantoms import CTPhantom, PhantomParams, make_ct_phantom
from training.phantoms.generator import TissueMap, make_ct_phantom_with_tissues
from training.phantoms.params import VERSE_LABEL
from training.phantoms.torso import Tissue

SMALL = {"matrix": 128, "pixel_spacing_mm": 2.5, "slice_thickness_mm": 2.5}


@pytest.fixture(scope="module")
def realistic() -> tuple[CTPhantom, TissueMap]:
    params = PhantomParams(field_of_view="chest_abdomen_pelvis", contrast=False, **SMALL)
    return make_ct_phantom_with_tissues(11, params)


def test_same_seed_and_params_give_bit_identical_arrays() -> None:
    params = PhantomParams(field_of_view="partial", center_level="L1", **SMALL)
    a, b = make_ct_phantom(3, params), make_ct_phantom(3, params)
    other = make_ct_phantom(4, params)
    assert np.array_equal(a.image_hu, b.image_hu)
    assert np.array_equal(a.vertebrae, b.vertebrae)
    assert np.array_equal(a.subregions, b.subregions)
    assert np.array_equal(a.affine, b.affine)
    assert a.vertebra_truth == b.vertebra_truth
    assert a.phantom_id == b.phantom_id
    same = other.image_hu.shape == a.image_hu.shape and np.array_equal(other.image_hu, a.image_hu)
    assert not same, "a different seed must give a different phantom"


def test_every_labelled_vertebra_is_in_the_truth_and_the_sequence_is_contiguous(
    realistic: tuple[CTPhantom, TissueMap],
) -> None:
    phantom, _ = realistic
    present = {int(v) for v in np.unique(phantom.vertebrae) if v}
    truth = {v.label for v in phantom.vertebra_truth}
    assert present == truth, f"labels in the mask {sorted(present)} != truth {sorted(truth)}"
    order = [VERSE_LABEL[v.level] for v in phantom.vertebra_truth if v.level != "S"]
    presacral = [n for n in order if n != 28]  # T13 sits between T12 and L1
    assert presacral == list(range(presacral[0], presacral[0] + len(presacral))), order
    assert len(presacral) >= 15, f"a chest-abdomen-pelvis CT shows {len(presacral)} vertebrae"


def test_centroids_lie_inside_their_own_masks(realistic: tuple[CTPhantom, TissueMap]) -> None:
    phantom, _ = realistic
    inverse = np.linalg.inv(phantom.affine)
    for v in phantom.vertebra_truth:
        i, j, k = np.rint(inverse @ np.array([*v.body_centroid_mm, 1.0]))[:3].astype(int)
        assert phantom.vertebrae[i, j, k] == v.label, f"{v.level} body centroid off its mask"


def test_incomplete_vertebrae_touch_the_edge_and_complete_ones_do_not() -> None:
    phantom = make_ct_phantom(5, PhantomParams(field_of_view="partial", **SMALL))
    assert any(not v.complete for v in phantom.vertebra_truth), "a partial FOV cuts vertebrae"
    for v in phantom.vertebra_truth:
        mask = phantom.vertebrae == v.label
        edge = (
            mask[0].any()
            | mask[-1].any()
            | mask[:, 0].any()
            | mask[:, -1].any()
            | mask[:, :, 0].any()
            | mask[:, :, -1].any()
        )
        assert edge == (not v.complete), f"{v.level}: complete={v.complete} but edge={edge}"


def test_normal_spine_is_grade_zero_including_physiological_wedging() -> None:
    phantom = make_ct_phantom(
        8, PhantomParams(fractures=[], field_of_view="thoracolumbar", **SMALL)
    )
    graded = [v for v in phantom.vertebra_truth if v.heights_mm]
    assert graded
    worst = max(graded, key=lambda v: v.height_loss)
    assert worst.genant_grade == 0 and worst.height_loss < 0.2, f"{worst.level} {worst.height_loss}"
    assert phantom.study_truth() == {"fracture": False, "max_grade": 0, "fractured_levels": []}


PUBLISHED = {  # tissue: (low, high) of the median HU, DOMAIN.md ranges
    Tissue.FAT: (-130.0, -50.0),
    Tissue.MUSCLE: (10.0, 65.0),
    Tissue.LUNG: (-950.0, -550.0),
    Tissue.LIVER: (40.0, 75.0),
    Tissue.BLOOD: (25.0, 65.0),
}


def test_realistic_hu_per_tissue_lies_in_published_ranges(
    realistic: tuple[CTPhantom, TissueMap],
) -> None:
    phantom, tissues = realistic
    classes = tissues.full(phantom.image_hu.shape)
    soft = phantom.vertebrae == 0
    for tissue, (low, high) in PUBLISHED.items():
        core = ndimage.binary_erosion(classes == tissue, iterations=1) & soft
        values = phantom.image_hu[core]
        assert values.size > 50, f"{tissue.name}: only {values.size} voxels"
        median = float(np.median(values))
        assert low <= median <= high, f"{tissue.name} median {median:.0f} HU not in {low}-{high}"
    air = phantom.image_hu[ndimage.binary_erosion(classes == Tissue.AIR, iterations=3)]
    assert abs(float(np.median(air)) + 1000) < 30, f"air median {np.median(air)}"


def test_trabecular_hu_follows_the_truth(realistic: tuple[CTPhantom, TissueMap]) -> None:
    phantom, _ = realistic
    for v in phantom.vertebra_truth:
        if v.level not in ("L1", "L2", "L3"):
            continue
        body = ndimage.binary_erosion(
            (phantom.vertebrae == v.label) & (phantom.subregions == 1), iterations=2
        )
        median = float(np.median(phantom.image_hu[body]))
        assert abs(median - v.trabecular_hu) < 40, f"{v.level}: {median} vs {v.trabecular_hu}"
        assert 40 <= v.trabecular_hu <= 300


def test_randomized_mode_changes_intensities_and_arch_thickness_not_the_spine() -> None:
    """Randomized mode (training only) redraws the intensities and the posterior elements'
    thickness; the levels, the bodies and where they lie are the realistic phantom's (whose
    arches keep their nominal thickness: the evaluation phantoms are unchanged)."""
    params = PhantomParams(field_of_view="partial", center_level="T12", **SMALL)
    real = make_ct_phantom(21, params)
    rand = make_ct_phantom(
        21, PhantomParams(mode="randomized", field_of_view="partial", center_level="T12", **SMALL)
    )
    assert set(np.unique(real.vertebrae)) == set(np.unique(rand.vertebrae))
    bodies = (real.subregions == 1), (rand.subregions == 1)
    assert 2 * (bodies[0] & bodies[1]).sum() / (bodies[0].sum() + bodies[1].sum()) > 0.97
    diff = float(np.abs(real.image_hu.astype(float) - rand.image_hu).mean())
    assert diff > 50, f"randomized intensities differ by only {diff:.1f} HU on average"
    assert rand.mode == "randomized"
    assert real.acquisition["look"]["arch_scale"] == 1.0


def test_randomized_arches_are_drawn_thin_and_thick() -> None:
    """The arch scale reaches the label maps: over a few randomized phantoms the posterior
    elements' share of the vertebra follows it (thin arches, as on real CT, included)."""
    scales, shares = [], []
    for seed in range(30, 36):
        params = PhantomParams(
            mode="randomized", field_of_view="partial", center_level="L2", **SMALL
        )
        phantom = make_ct_phantom(seed, params)
        scales.append(phantom.acquisition["look"]["arch_scale"])
        shares.append((phantom.subregions == 2).sum() / (phantom.subregions > 0).sum())
    assert min(scales) < 0.75 and max(scales) > 1.0, scales
    assert np.corrcoef(scales, shares)[0, 1] > 0.8, (scales, shares)
