"""Rib-bearing vertebrae (models/ribs.py) and the names they allow (a T13 bears ribs)."""

from __future__ import annotations

import numpy as np

from models.labelling import RIB_CONTACT_MM3, name_units
from models.networks import VERTEBRA_LABELS
from models.ribs import rib_contact

SPACING = (3.0, 3.0, 3.0)
T10, T11, T12, T13, L1, L2, L3, L4, L5, L6, SACRUM = 17, 18, 19, 28, 20, 21, 22, 23, 24, 25, 26


def torso(anterior_sign: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(HU, units) on a 3 mm grid, axes left-right, back-front (front at high y where
    ``anterior_sign`` is +1), feet-head: four vertebrae (bodies in front, arches behind), a
    rib on unit 2 running out to both sides behind the bodies' middle, an iliac wing beside
    unit 4 (as tall as it is wide) and a contrast-filled aorta in front of the bodies."""
    shape = (80, 50, 48)
    hu = np.full(shape, 40.0)
    units = np.zeros(shape, dtype=np.int32)
    for number in range(1, 5):
        top = 46 - (number - 1) * 11
        z = slice(top - 9, top)
        units[34:46, 24:34, z] = number  # body
        units[37:43, 14:24, z] = number  # arch
    hu[units > 0] = 300.0
    hu[10:70, 20:23, 32:35] = 400.0  # rib at unit 2, 180 mm across, 9 mm along the spine
    hu[34:46, 20:23, 32:35] = 300.0  # (its head inside the spine stays the spine's)
    hu[6:16, 16:30, 2:16] = 500.0  # iliac wing: 30 mm across, 42 mm along
    hu[38:42, 37:41, :] = 250.0  # aorta: along the spine, in front
    if anterior_sign < 0:
        return hu[:, ::-1].copy(), units[:, ::-1].copy()
    return hu, units


def test_a_rib_touching_a_vertebra_is_found_and_wings_and_vessels_are_not() -> None:
    for sign in (1, -1):
        hu, units = torso(sign)
        contact = rib_contact(hu, units, SPACING, anterior_sign=sign)
        assert contact[2] >= RIB_CONTACT_MM3, (sign, contact)
        assert contact[1] == contact[3] == contact[4] == 0.0, (sign, contact)


def test_an_arch_the_outline_left_out_is_no_rib_pair() -> None:
    """Real CT (the TPTBox L3 crop): an outline that draws a lumbar body but not its arch
    leaves the arch and both transverse processes, 90 mm from tip to tip, as bone beside the
    vertebra, as wide as a rib pair; it reaches across the spine's midline, a rib never
    does, so it gives no rib contact (the crop was named T11-L1 from it)."""
    for sign in (1, -1):
        hu, units = torso(sign)
        front = slice(24, 34) if sign > 0 else slice(16, 26)  # the bodies, front to back
        back = slice(16, 19) if sign > 0 else slice(31, 34)  # behind them, at the arches
        arch = units == 3
        arch[:, front] = False
        units[arch] = 0  # unit 3's arch left out, still bone in ``hu``
        top = 46 - 2 * 11
        hu[25:55, back, top - 6 : top - 3] = 350.0  # transverse processes, 90 mm tip to tip
        contact = rib_contact(hu, units, SPACING, anterior_sign=sign)
        assert contact[3] == 0.0, (sign, contact)
        assert contact[2] >= RIB_CONTACT_MM3, (sign, contact)


def stack(
    evidence: list[dict[int, float]], sizes: list[int] | None = None, cut: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Units head to feet (``sizes`` in planes of 16 voxels, default 8 each, a plane apart;
    with ``cut`` the last reaches the grid's end: the scan cuts it) and the network's
    probabilities at them."""
    sizes = sizes or [8] * len(evidence)
    units = np.zeros((4, 4, sum(sizes) + len(sizes) + 1), dtype=np.int32)
    top = units.shape[2] - 1
    for number, size in enumerate(sizes, start=1):
        units[:, :, top - size : top] = number
        top -= size + 1
    if cut:
        units[:, :, : top + 1] = len(sizes)
    voxels = np.nonzero(units)
    probabilities = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
    for number, levels in enumerate(evidence, start=1):
        for level, p in levels.items():
            probabilities[VERTEBRA_LABELS.index(level), units[voxels] == number] = p
    return units, probabilities


def named(units: np.ndarray, labels: np.ndarray) -> list[int]:
    return [int(labels[units == n][0]) for n in range(1, int(units.max()) + 1)]


def contact_of(bearing: list[bool]) -> np.ndarray:
    return np.array([0.0, *(1000.0 if b else 0.0 for b in bearing)])


def test_an_l6_spine_read_one_level_high_is_counted_down_from_its_ribs() -> None:
    """Phantom seed 26 (C6 to sacrum, an L6): the network reads T1-T12 right, the rib-less L1
    as T12 (0.55) and L2-L6 as L1-L5. The count from the neck needs one vertebra more
    between T12 and the sacrum; the network gives a T13 or an L6 almost no probability.
    Without the ribs the L1 came out a T13; a T13 bears ribs, so it is an L1 and the last
    lumbar an L6."""
    evidence: list[dict[int, float]] = [
        *({level: 0.75, level + 1: 0.25} for level in range(6, T12)),  # C6-T11
        {T12: 0.64, T11: 0.36},
        {T12: 0.55, L1: 0.45},
        {L1: 0.76, L2: 0.24},
        {L2: 0.96, L3: 0.04},
        {L3: 0.91, L4: 0.09},
        {L4: 0.97, L5: 0.03},
        {L5: 0.98, SACRUM: 0.01, L4: 0.01},
        {SACRUM: 1.0},
    ]
    units, probabilities = stack(evidence)
    ribs = contact_of([False, False] + [True] * 12 + [False] * 7)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS, rib_contact_mm3=ribs)
    assert named(units, labels) == [*range(6, T12 + 1), L1, L2, L3, L4, L5, L6, SACRUM]
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
    assert named(units, labels)[14] == T13  # what the ribs are for


def test_a_rib_bearing_vertebra_between_t12_and_five_lumbar_is_a_t13() -> None:
    """Phantom seed 21 (T10 to sacrum, a T13): the network reads the T13 as L1 (0.64) or T12
    and the true L1 as L1 too; the thoracic units are smaller, so their evidence weighs
    less. Five lumbar vertebrae above the sacrum and T10-T12 above leave the rib-bearing
    one between them a T13 (the labelling before named T10-T13 T9-T12); without ribs it is
    not a T13."""
    evidence: list[dict[int, float]] = [
        {T10: 0.82, T11: 0.17},
        {T11: 0.94, T12: 0.04},
        {T12: 0.89, T11: 0.11},
        {L1: 0.64, T12: 0.36},
        {L1: 0.64, L2: 0.36},
        {L2: 0.96, L3: 0.03},
        {L3: 1.0},
        {L4: 0.99},
        {L5: 0.99},
        {SACRUM: 1.0},
    ]
    units, probabilities = stack(evidence, [41, 43, 48, 57, 67, 71, 87, 93, 111, 400])
    ribs = contact_of([True] * 4 + [False] * 6)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS, rib_contact_mm3=ribs)
    assert named(units, labels) == [T10, T11, T12, T13, L1, L2, L3, L4, L5, SACRUM]
    ribs = contact_of([True] * 3 + [False] * 7)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS, rib_contact_mm3=ribs)
    assert T13 not in named(units, labels)


def test_a_rib_bearing_vertebra_is_not_named_lumbar() -> None:
    """A T10-L3 scan with no end in view, read one level low (phantom seed 211: the last
    rib-bearing T12 read as L1, the spine above it one off): a rib-bearing vertebra is no
    lumbar one (none of 349 phantom lumbar vertebrae touched a rib), so the run is counted
    back up from it."""
    truth = [T10, T11, T12, L1, L2, L3]  # VerSe numbers 17-22: each read as the next
    evidence = [{level + 1: 0.7, level: 0.3} for level in truth]
    units, probabilities = stack(evidence, [41, 43, 48, 57, 67, 71], cut=True)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
    assert named(units, labels) == [T11, T12, L1, L2, L3, L4]
    ribs = contact_of([True] * 3 + [False] * 3)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS, rib_contact_mm3=ribs)
    assert named(units, labels) == truth


def test_a_normal_spine_gains_no_transitional_vertebra() -> None:
    evidence = [{level: 0.9} for level in (T11, T12, L1, L2, L3, L4, L5)] + [{SACRUM: 1.0}]
    units, probabilities = stack(evidence)
    for bearing in ([True, True] + [False] * 6, [True] * 3 + [False] * 5):
        labels, _ = name_units(
            units, probabilities, VERTEBRA_LABELS, rib_contact_mm3=contact_of(bearing)
        )
        assert named(units, labels) == [T11, T12, L1, L2, L3, L4, L5, SACRUM]


def test_a_cut_sacrum_read_as_l5_at_the_scans_end_is_no_l6() -> None:
    """Phantom seed 42: the scan ends in the sacrum's top, which the network reads as L5
    (0.99), and reads L4 and L5 as L4. An L6 is named from the count between units; the last
    unit has nothing below it to count against."""
    evidence: list[dict[int, float]] = [
        {T12: 0.62, L1: 0.31, T11: 0.05},
        {L1: 0.55, L2: 0.39, T12: 0.04},
        {L2: 0.91, L3: 0.08},
        {L3: 0.97, L2: 0.02},
        {L4: 0.65, L3: 0.35},
        {L4: 0.69, L5: 0.31},
        {L5: 0.989, L4: 0.01, SACRUM: 0.001},
    ]
    units, probabilities = stack(evidence, [59, 100, 109, 120, 137, 159, 32], cut=True)
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
    assert named(units, labels) == [T12, L1, L2, L3, L4, L5, SACRUM]
