"""Labelling sanity: the network's per-voxel level guesses -> one contiguous sequence of vertebrae.

The segmenter's vertebra head scores every voxel for each VerSe level. Its argmax alone can
name two vertebrae alike, skip one, split one between two names or put a stray blob on a rib.
Here the argmax is cut into *units* (connected pieces of one predicted level), the units are
ordered along the spine (head to feet), and the Viterbi algorithm picks the most probable
sequence of levels for them under the anatomy:

* levels follow the VerSe order C1..C7, T1..T12, [T13], L1..L5, [L6], sacrum, head to feet;
  T13 and L6 are optional (transitional anatomy), so T12 -> L1 and L5 -> S cost nothing,
  and naming a unit T13 or L6 costs their rarity (``OPTIONAL_VISIT_COST``);
* a skipped level costs ``SKIP_COST`` (a vertebra the network missed); two units in a row
  may share a level at ``SPLIT_COST`` (one vertebra cut in two), and they are merged, but
  not the vertebra the scan's end cuts and its neighbour;
* each unit's evidence is its mean probability per level, split into region (cervical,
  thoracic, lumbar, sacrum) and level within the region (see ``_emission``), weighted by the
  unit's size relative to a typical vertebra, so a stray blob cannot outvote a whole body;
* the network sees too few transitional spines to tell a T13 from a T12 or an L6 from an L5
  (it gives them almost no probability), so within its region a T13 has at least a T12's
  evidence and an L6 an L5's: whether a spine has one is decided by the count between what
  anchors it (the neck, the thoracolumbar junction, the sacrum) and their rarity. Not at the
  scan's ends: a first or last unit has nothing beyond it to count against (a cut sacrum's
  top, read as L5, is not an L6);
* a T13 bears ribs (it is the 13th rib-bearing vertebra): where the ribs were looked for
  (models/ribs.py), a unit without rib contact pays RIBLESS_T13_COST for the name (an L6
  spine's rib-less L1 read as a T13), and a unit with rib contact RIBBED_LUMBAR_COST for
  a lumbar name (a T12 read as L1 and the spine above it one off; on 90 phantoms none of
  349 lumbar vertebrae had the contact, 74 of 82 T12s had it, the others 11-rib spines).
  The ribs say nothing more: the upper ones are found on a third of T1s, and a rib-less
  vertebra under the last rib is an L1 or an 11-rib spine's T12.

Pieces smaller than MIN_UNIT_MM3 are fragments, not sequence positions: they join the unit
they touch (a spinous process tip given the next level's name) or are dropped.

The cues that fix off-by-one errors (the sacrum, the last rib-bearing vertebra, the shape of
C2) are what the network's level head learns; the sequence constraint spreads their
evidence along the whole spine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

# VerSe labels in head-to-feet order; T13 (28) sits between T12 (19) and L1 (20).
SACRUM = 26
SEQUENCE: tuple[int, ...] = (*range(1, 20), 28, *range(20, 26), SACRUM)
TRANSITIONAL = frozenset({28, 25})  # T13 and L6 may be absent without a penalty
# ... and are there at the cost of their rarity (-log prevalence: T13 about 2 %, L6 about
# 6 %), so a sequence one short of evidence is not completed with an L6 above the sacrum
OPTIONAL_VISIT_COST = {28: 3.9, 25: 2.8}
SKIP_COST = 4.0
SPLIT_COST = 1.5
# Units made from the outline's bodies are rarely half a vertebra: two of whole size share a
# level only at this cost (a merge of two real vertebrae under one name shifts the rest).
# Not so the sacrum: five fused segments whose remnant discs the outline may cut at, so its
# pieces share its name at SPLIT_COST whatever their size (else the top segment, a whole
# body's size, is named L6 to avoid the cost; phantom seeds 30-59: 2 of 30 cases).
BODY_UNIT_SPLIT_COST = 10.0
WHOLE_UNIT = 0.6
# A piece smaller than this is a fragment, not a vertebra (a C3 is about 8 cm3, body and arch).
MIN_UNIT_MM3 = 1500.0
FRAGMENT_REACH_VOXELS = 2.0
WITHIN_REGION_WEIGHT = 0.5
# the level a transitional vertebra is read as (T13 as T12, L6 as L5)
LOOKALIKE = {28: 19, 25: 24}
# Rib contact (models/ribs.py) from which a unit bears ribs: every complete T10-T13 with a
# rib has at least 450 mm3 on phantoms, no lumbar vertebra any. And the cost of naming a
# unit without it T13, and one with it lumbar (in log evidence, as the emissions).
RIB_CONTACT_MM3 = 300.0
RIBLESS_T13_COST = 8.0
RIBBED_LUMBAR_COST = 8.0
_REGIONS = {"C": range(1, 8), "T": (*range(8, 20), 28), "L": range(20, 26), "S": (26,)}
_REGION_MEMBERS = [np.array([SEQUENCE.index(v) for v in r]) for r in _REGIONS.values()]
_SACRUM_STATE = SEQUENCE.index(SACRUM)
_T13_STATE = SEQUENCE.index(28)
_LUMBAR_STATES = _REGION_MEMBERS[list(_REGIONS).index("L")]  # L1-L6
_LOOKALIKE_STATES = [(SEQUENCE.index(a), SEQUENCE.index(b)) for a, b in LOOKALIKE.items()]
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
Label = TypeVar("Label", bound=np.integer)


@dataclass(frozen=True)
class Unit:
    """A connected piece of one predicted level on the model grid."""

    index: int
    voxels: int
    centre: NDArray[np.float64]  # model-grid voxel coordinates
    evidence: NDArray[np.float64]  # mean probability per SEQUENCE entry (sums to ~1)


def contiguous_labels(
    probabilities: NDArray[np.float32],
    class_labels: tuple[int, ...],
    superior_axis: int = 2,
    voxel_mm3: float = 27.0,
) -> tuple[NDArray[np.uint8], dict[int, float]]:
    """Relabel the level guesses in ``probabilities`` (C, X, Y, Z; class 0 = background) as a
    contiguous vertebra sequence; returns the VerSe label map and each label's confidence
    (its mean probability inside the vertebra).

    ``class_labels[c]`` is the VerSe label of channel ``c``; ``superior_axis`` is the array
    axis pointing to the head (RAS+ arrays: axis 2); ``voxel_mm3`` the volume of one voxel."""
    # A voxel is vertebra when the levels together outweigh the background, even if no
    # single level does; it then takes its most probable level.
    foreground = probabilities[0] < 0.5
    best = np.zeros(foreground.shape, dtype=np.intp)
    inside = np.nonzero(foreground)  # a few percent of the grid: the argmax only there
    best[inside] = probabilities[1:, inside[0], inside[1], inside[2]].argmax(axis=0) + 1
    min_voxels = max(1, round(MIN_UNIT_MM3 / voxel_mm3))
    pieces, units = _units(probabilities, best, class_labels, min_voxels)
    if not units:
        return np.zeros(best.shape, dtype=np.uint8), {}
    units.sort(key=lambda u: -u.centre[superior_axis])
    levels = _viterbi(units)
    lookup = np.zeros(len(units) + 1, dtype=np.uint8)
    for unit, level in zip(units, levels, strict=True):
        lookup[unit.index] = level
    labels = lookup[pieces]
    confidence = _confidence(labels, probabilities, class_labels)
    return labels, confidence


def _units(
    probabilities: NDArray[np.float32],
    best: NDArray[np.integer],
    class_labels: tuple[int, ...],
    min_voxels: int,
) -> tuple[NDArray[np.int32], list[Unit]]:
    """Connected pieces of each predicted level, numbered 1..n in the returned map.

    Pieces of at least ``min_voxels`` are units (sequence positions); smaller ones join the
    unit they touch (within two voxels), or are dropped when they touch none."""
    pieces = np.zeros(best.shape, dtype=np.int32)
    found: list[tuple[int, tuple[slice, ...], NDArray[np.bool_]]] = []
    count = 0
    for channel in range(1, len(class_labels)):
        mask = best == channel
        if not mask.any():
            continue
        components, _ = ndimage.label(mask, structure=_STRUCTURE)
        for number, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            count += 1
            part = components[box] == number
            pieces[box][part] = count
            found.append((count, box, part))
    if not found:
        return pieces, []
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    units: list[Unit] = []
    keep = np.zeros(count + 1, dtype=np.int32)
    for number, box, part in found:
        if sizes[number] < min_voxels:
            continue
        inside = probabilities[(slice(None), *box)][:, part]  # (C, n)
        centre = np.argwhere(part).mean(axis=0) + np.array([s.start for s in box])
        keep[number] = len(units) + 1
        evidence = _evidence(inside.mean(axis=1), class_labels)
        units.append(Unit(len(units) + 1, int(sizes[number]), centre, evidence))
    unit_map = keep[pieces]
    # Fragments (pieces too small to be units) join the nearest unit within reach.
    return fill_labels(unit_map, pieces > 0, reach=FRAGMENT_REACH_VOXELS), units


def name_units(
    unit_map: NDArray[np.integer],
    probabilities: NDArray[np.floating],
    class_labels: tuple[int, ...],
    superior_axis: int = 2,
    rib_contact_mm3: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.uint8], dict[int, float]]:
    """Name given units (``unit_map``: 1..n, 0 background; from the outline stage's vertebral
    bodies) as a contiguous vertebra sequence. ``probabilities`` (C, number of nonzero voxels
    of ``unit_map`` in ``np.nonzero`` order) are the level network's probabilities at those
    voxels; ``rib_contact_mm3`` (index = unit number; models/ribs.py), where given, says
    which units bear ribs (only a rib-bearing unit is a T13). Units given one level are one
    vertebra. Returns the VerSe label map on the grid of ``unit_map`` and each label's
    confidence (its mean probability inside the vertebra)."""
    inside = np.nonzero(unit_map)
    ids = unit_map[inside].astype(np.intp)
    count = int(ids.max(initial=0))
    voxels = np.bincount(ids, minlength=count + 1)
    if count == 0:
        return np.zeros(unit_map.shape, dtype=np.uint8), {}
    sums = np.stack([np.bincount(ids, weights=p, minlength=count + 1) for p in probabilities])
    centres = np.stack([np.bincount(ids, weights=axis, minlength=count + 1) for axis in inside])
    units = [
        Unit(
            i,
            int(voxels[i]),
            centres[:, i] / voxels[i],
            _evidence(sums[:, i] / voxels[i], class_labels),
        )
        for i in range(1, count + 1)
        if voxels[i]
    ]
    units.sort(key=lambda u: -u.centre[superior_axis])
    # Units the grid's end planes cut: the vertebra the field of view cuts (and a sliver of
    # the one beyond it) is not its inward neighbour's other half, whatever its size.
    head, feet = (
        set(np.unique(np.take(unit_map, plane, superior_axis)).tolist()) for plane in (-1, 0)
    )
    at_head = np.array([u.index in head for u in units])
    at_feet = np.array([u.index in feet for u in units])
    cut = at_head[:-1] | at_feet[1:]
    costs = None
    if rib_contact_mm3 is not None:
        costs = np.zeros((len(units), len(SEQUENCE)))
        ribless = np.array([rib_contact_mm3[u.index] < RIB_CONTACT_MM3 for u in units])
        costs[ribless, _T13_STATE] = RIBLESS_T13_COST
        costs[np.ix_(~ribless, _LUMBAR_STATES)] = RIBBED_LUMBAR_COST
    lookup = np.zeros(count + 1, dtype=np.uint8)
    named = _viterbi(units, BODY_UNIT_SPLIT_COST, cut, costs)
    for unit, level in zip(units, named, strict=True):
        lookup[unit.index] = level
    confidence = {}
    for label in (int(v) for v in np.unique(lookup) if v):
        members = lookup == label
        channel = class_labels.index(label)
        confidence[label] = float(sums[channel, members].sum() / voxels[members].sum())
    return lookup[unit_map], confidence


def reads_beyond(
    mean_probabilities: NDArray[np.floating], class_labels: tuple[int, ...], name: int, end: int
) -> bool:
    """Whether a piece whose mean level probabilities are ``mean_probabilities`` reads as a
    level beyond ``name`` towards the head (``end`` +1) or the feet (-1)."""
    best = int(_evidence(mean_probabilities, class_labels).argmax())
    at = SEQUENCE.index(name)
    return best < at if end > 0 else best > at


def _evidence(
    mean_probabilities: NDArray[np.floating], class_labels: tuple[int, ...]
) -> NDArray[np.float64]:
    """A unit's mean probability per channel -> per SEQUENCE entry, summing to 1."""
    evidence = np.zeros(len(SEQUENCE))
    for channel, label in enumerate(class_labels):
        if label in SEQUENCE:
            evidence[SEQUENCE.index(label)] = float(mean_probabilities[channel])
    total = evidence.sum()
    return evidence / total if total > 0 else np.full(len(SEQUENCE), 1 / len(SEQUENCE))


def _viterbi(
    units: list[Unit],
    whole_split_cost: float = SPLIT_COST,
    cut_pairs: NDArray[np.bool_] | None = None,
    name_costs: NDArray[np.float64] | None = None,
) -> list[int]:
    """Most probable level sequence (VerSe labels) for head-to-feet ordered units.

    Two consecutive units that are each a whole vertebra's size (WHOLE_UNIT of the median of
    the units around them) share a level at ``whole_split_cost`` instead of SPLIT_COST; so
    do units ``i`` and ``i + 1`` where ``cut_pairs[i]`` (the field of view cuts one of them
    at the end beyond it). ``name_costs`` (units, SEQUENCE), where given, are subtracted from
    the units' evidence."""
    n, m = len(units), len(SEQUENCE)
    sizes = np.array([u.voxels for u in units], dtype=np.float64)
    typical = float(np.median(sizes))
    # a T13 or an L6 is named from the count between units: not at the scan's ends
    emit = np.stack(
        [
            _emission(u.evidence, 0 < i < n - 1) * min(1.0, u.voxels / typical) ** 0.5
            for i, u in enumerate(units)
        ]
    )
    if name_costs is not None:
        emit -= name_costs
    local = np.array([np.median(sizes[max(0, i - 2) : i + 3]) for i in range(n)])
    whole = sizes >= WHOLE_UNIT * local
    move = _transition_costs()
    split = np.diag(np.full(m, whole_split_cost - SPLIT_COST))
    split[_SACRUM_STATE, _SACRUM_STATE] = 0.0
    visit = np.array([OPTIONAL_VISIT_COST.get(level, 0.0) for level in SEQUENCE])
    score = emit[0] - visit  # a first unit named T13 or L6 pays their rarity too
    back = np.zeros((n, m), dtype=np.int64)
    whole_pair = whole[:-1] & whole[1:]
    if cut_pairs is not None:
        whole_pair |= cut_pairs
    for i in range(1, n):
        step = move + split if whole_pair[i - 1] else move
        total = score[:, None] - step  # from state a (rows) to state b (columns)
        back[i] = total.argmax(axis=0)
        score = total.max(axis=0) + emit[i]
    path = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    path.reverse()
    return [SEQUENCE[s] for s in path]


def _emission(evidence: NDArray[np.float64], lookalike: bool = True) -> NDArray[np.float64]:
    """Log evidence for each level, split as region (cervical, thoracic, lumbar, sacrum) and
    level within the region; the within-region part weighs WITHIN_REGION_WEIGHT.

    Telling a thoracic from a lumbar vertebra (ribs) or the sacrum is a local question the
    network answers early and well; telling T7 from T8 needs counting. Where a region
    boundary is in view, the sequence constraint then names every unit from it. With
    ``lookalike``, a T13 or an L6 has at least the evidence, within its region, of the level
    it is read as (LOOKALIKE)."""
    region_total = np.zeros(len(SEQUENCE))
    for members in _REGION_MEMBERS:
        region_total[members] = evidence[members].sum()
    within = evidence / np.maximum(region_total, 1e-12)
    for transitional, resembled in _LOOKALIKE_STATES if lookalike else ():
        within[transitional] = max(within[transitional], within[resembled])
    return np.log(region_total + 1e-4) + WITHIN_REGION_WEIGHT * np.log(within + 1e-4)


def _transition_costs() -> NDArray[np.float64]:
    """Cost of the next unit (head to feet) having level b after a unit of level a."""
    m = len(SEQUENCE)
    cost = np.full((m, m), np.inf)
    for a in range(m):
        cost[a, a] = SPLIT_COST
        skipped = 0.0
        for b in range(a + 1, m):
            cost[a, b] = skipped + OPTIONAL_VISIT_COST.get(SEQUENCE[b], 0.0)
            if SEQUENCE[b] not in TRANSITIONAL:
                skipped += SKIP_COST
    return cost


def _confidence(
    labels: NDArray[np.uint8], probabilities: NDArray[np.float32], class_labels: tuple[int, ...]
) -> dict[int, float]:
    confidence = {}
    for label in (int(v) for v in np.unique(labels) if v):
        channel = class_labels.index(label)
        confidence[label] = float(probabilities[channel][labels == label].mean())
    return confidence


def fill_labels(
    labels: NDArray[Label], foreground: NDArray[np.bool_], reach: float = np.inf
) -> NDArray[Label]:
    """``labels`` extended to every unlabelled ``foreground`` voxel within ``reach`` voxels
    (Euclidean) of a labelled one, taking the nearest label."""
    missing = foreground & (labels == 0)
    if not labels.any() or not missing.any():
        return labels
    distance, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    missing &= distance <= reach
    out = labels.copy()
    out[missing] = labels[tuple(axis[missing] for axis in nearest)]
    return out
