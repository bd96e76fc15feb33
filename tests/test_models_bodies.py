"""Vertebra units from the outline stage's bodies (models/bodies.py) and naming given units."""

from __future__ import annotations

import numpy as np

from models.bodies import body_units, centre_line, grow_through, profile_cuts
from models.labelling import name_units
from models.networks import VERTEBRA_LABELS
from models.segmenter import _name_with_slivers

SPACING = (1.5, 1.5, 1.5)
T12, L1, L2, L3, L4, L5, SACRUM = 19, 20, 21, 22, 23, 24, 26


def spine(count: int = 5, body: int = 16, disc: int = 4, shift: float = 0.0):
    """A column of ``count`` box vertebrae on a 1.5 mm grid, head at high z: bodies 24 mm
    high in front (high y), arches behind joined to their body by a pedicle and touching the
    next arch down (a facet joint). The discs are *not* open in the vertebra call: the body
    probability only dips there (0.2), as an undertrained outline network leaves them. Each
    level moves ``shift`` voxels more forward than the one above (a curved spine). Returns
    the vertebra call, the body probability and the true instance map."""
    depth = count * (body + disc) + disc
    shape = (40, 80, depth)
    vertebra = np.zeros(shape, dtype=bool)
    body_probability = np.zeros(shape, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.int32)
    for n in range(count):
        top = depth - disc - n * (body + disc)
        z = slice(top - body, top)
        y0 = 30 + round(shift * n * (n + 1) / 2)
        front = (slice(8, 32), slice(y0, y0 + 20), z)
        vertebra[front] = True
        body_probability[front] = 0.8
        truth[front] = n + 1
        pedicle = (slice(12, 28), slice(y0 - 6, y0), slice(top - 10, top - 4))
        arch = (slice(10, 30), slice(y0 - 20, y0 - 6), slice(top - body - disc, top - 2))
        for part in (pedicle, arch):
            vertebra[part] = True
            truth[part] = n + 1
        if n + 1 < count:  # the disc below: vertebra in the call, little body
            gap = (slice(8, 32), slice(y0, y0 + 20), slice(top - body - disc, top - body))
            vertebra[gap] = True
            body_probability[gap] = 0.2
    return vertebra, body_probability, truth


def agreement(units: np.ndarray, truth: np.ndarray) -> float:
    """Share of true vertebra voxels in the unit that holds most of their vertebra, each unit
    serving one vertebra."""
    used, right = set(), 0
    for label in (v for v in np.unique(truth) if v):
        values, counts = np.unique(units[truth == label], return_counts=True)
        best = int(values[np.argmax(counts)])
        assert best and best not in used, (label, values, counts)
        used.add(best)
        right += int(counts.max())
    return right / int((truth > 0).sum())


def test_bodies_joined_in_the_vertebra_call_are_cut_at_the_discs() -> None:
    vertebra, body_probability, truth = spine()
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 5
    assert agreement(units, truth) > 0.95


def test_a_curved_spine_is_cut_along_its_centre_line() -> None:
    vertebra, body_probability, truth = spine(shift=2.0)  # 30 mm forward over five levels
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 5
    assert agreement(units, truth) > 0.95
    line = centre_line(body_probability, np.array(SPACING))
    assert line is not None and line[0, 1] > line[-1, 1] + 15  # forward towards the feet


def test_posterior_elements_join_the_body_their_pedicle_reaches() -> None:
    seeds = np.zeros((1, 12, 12), dtype=np.int32)
    mask = np.zeros((1, 12, 12), dtype=bool)
    mask[0, 0:4, :] = True  # two bodies side by side in the first rows
    seeds[0, 0:4, 0:5], seeds[0, 0:4, 7:12] = 1, 2
    mask[0, 4:12, 1:3] = True  # a pedicle from body 1, then an arch lying under body 2
    mask[0, 10:12, 1:11] = True
    grown = grow_through(seeds, mask, 30)
    assert (grown[0, 10:12, 1:11] == 1).all()  # straight-line nearest would give body 2
    assert (grown[~mask & (seeds == 0)] == 0).all()


def test_no_dip_no_cut_and_shallow_dips_are_ignored() -> None:
    flat = np.ones(200)
    assert len(profile_cuts(flat, 1.0)) == 0
    bumpy = 1.0 - 0.1 * (np.arange(200) % 25 == 0)  # 10 % dips: noise, not discs
    assert len(profile_cuts(bumpy, 1.0)) == 0
    discs = np.where(np.arange(200) % 25 < 5, 0.2, 1.0)
    assert len(profile_cuts(discs, 1.0)) == 7


def test_the_disc_above_a_sliver_the_field_of_view_cut_is_a_cut() -> None:
    """Five bodies, then a disc and 4 mm of the next body rising to half height at the edge
    of the scan: the disc is a dip though the sliver never reaches a body's height."""
    profile = np.where(np.arange(125) % 25 < 5, 0.2, 1.0)
    sliver = np.concatenate([profile, np.full(5, 0.2), np.linspace(0.3, 0.5, 4)])
    assert len(profile_cuts(sliver, 1.0)) == len(profile_cuts(profile, 1.0)) + 1
    assert profile_cuts(sliver, 1.0)[-1] in range(125, 130)


def test_a_low_sliver_at_the_scan_end_is_cut_off_its_neighbour() -> None:
    """The top plate of a sacrum the scan cuts, a few planes at a quarter of a body's profile,
    then L5's disc: the profile's end reads about 0.27 of its peak (phantom seed 42), under
    MIN_DIP but a body, and the disc is a cut (else S1's plate stays in L5's interval)."""
    bodies = np.where(np.arange(150) % 30 < 5, 0.05, 1.0)
    profile = np.concatenate([np.full(3, 0.27), bodies])
    cuts = profile_cuts(profile, 1.5)
    assert cuts[0] in range(3, 9), cuts


def test_a_whole_body_and_the_one_the_scan_top_cuts_are_split_at_their_blurred_disc() -> None:
    """At the scan's top (the profile's end) a whole body and 17 mm of the next, their disc
    blurred to 0.72 of the peak, under MIN_DIP (phantom seeds 108 and 127): the two were one
    unit and the levels above them were named one off. The same pair at the feet end is left
    alone: a sacrum's profile dips between its segments."""
    bodies = np.where(np.arange(125) % 25 < 5, 0.2, 1.0)
    pair = np.concatenate(
        [np.ones(20), np.linspace(1.0, 0.72, 4), np.linspace(0.72, 1.0, 4)[1:], np.ones(14)]
    )
    profile = np.concatenate([bodies, np.full(5, 0.2), pair])
    cuts = profile_cuts(profile, 1.0)
    assert cuts[-2] in range(125, 130), cuts
    assert cuts[-1] in range(150, 154), cuts
    whole = np.concatenate([bodies, np.full(5, 0.2), np.ones(20)])  # the top body whole
    assert profile_cuts(whole, 1.0)[-1] in range(125, 130)
    assert len(profile_cuts(profile[::-1], 1.0)) == len(cuts) - 1


def test_an_empty_end_of_the_profile_cuts_no_body() -> None:
    """Past the spine the profile is empty: no cut may fall inside the end body (padding an
    empty end made it a dip and the end body an inner interval that was split)."""
    rng = np.random.default_rng(0)
    for empty in (40, 50, 60):
        bodies = np.where(np.arange(175) % 35 < 5, 0.2, 1.0) * rng.uniform(0.95, 1.05, 175)
        for profile in (
            np.concatenate([bodies, np.zeros(empty)]),
            np.concatenate([np.zeros(empty), bodies]),
        ):
            cuts = profile_cuts(profile, 1.0)
            assert all(profile[c] < 0.5 for c in cuts), (empty, cuts)


def test_given_units_are_named_as_a_sequence_and_split_bodies_merged() -> None:
    units = np.zeros((4, 4, 40), dtype=np.int32)
    for number, (z, height) in enumerate(((30, 6), (20, 2), (17, 2), (5, 6)), start=1):
        units[:, :, z : z + height] = number  # unit 1 at the top; 2 and 3 half a vertebra
    voxels = np.nonzero(units)
    probabilities = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
    evidence = {1: L1, 2: L2, 3: L2, 4: L3}  # units 2 and 3: one vertebra cut in two
    for number, level in evidence.items():
        probabilities[VERTEBRA_LABELS.index(level), units[voxels] == number] = 0.8
        probabilities[0, units[voxels] == number] = 0.2
    labels, confidence = name_units(units, probabilities, VERTEBRA_LABELS)
    assert [int(labels[0, 0, z]) for z in (32, 20, 17, 7)] == [L1, L2, L2, L3]
    assert set(confidence) == {L1, L2, L3}
    assert abs(confidence[L2] - 0.8) < 1e-6
    units[:, :, 14:20] = 3  # a whole vertebra below a whole vertebra: not merged
    units[:, :, 20:26] = 2
    voxels = np.nonzero(units)
    probabilities = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
    for number, level in {1: L1, 2: L2, 3: L2, 4: L3}.items():
        probabilities[VERTEBRA_LABELS.index(level), units[voxels] == number] = 0.8
        probabilities[0, units[voxels] == number] = 0.2
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
    assert len({int(labels[0, 0, z]) for z in (32, 22, 16, 7)}) == 4


def test_a_vertebra_the_scan_end_cuts_is_not_its_neighbours_other_half() -> None:
    """Half a vertebra whose evidence reads as its neighbour's level is the neighbour's other
    half inside the grid, but in the grid's end plane it is the vertebra the scan cuts and
    the next level on (phantoms: a cut T12 read as L1, the top of a cut sacrum as L5)."""
    for top, named in ((40, [T12, L1, L2]), (39, [L1, L1, L2])):  # in the end plane or not
        units = np.zeros((4, 4, 40), dtype=np.int32)
        units[:, :, 20:32] = 1  # L1, whole
        units[:, :, 6:18] = 2  # L2, whole
        units[:, :, top - 6 : top] = 3  # half a vertebra above L1 that reads L1
        voxels = np.nonzero(units)
        probabilities = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
        for number, level in {1: L1, 2: L2, 3: L1}.items():
            probabilities[VERTEBRA_LABELS.index(level), units[voxels] == number] = 0.98
            probabilities[VERTEBRA_LABELS.index(T12), units[voxels] == number] = 0.001
            probabilities[0, units[voxels] == number] = 0.019
        labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
        assert [int(labels[0, 0, z]) for z in (top - 1, 25, 10)] == named, top


def test_the_sacrum_cut_at_its_fused_segments_is_one_sacrum_not_an_l6() -> None:
    """The outline cuts the sacrum at the remnants of its discs into pieces each a whole
    body's size. They are one sacrum. The old rule (two whole units share a name only at
    BODY_UNIT_SPLIT_COST) named the top piece L6 (phantoms 36 and 50 of seeds 30-59, the top
    piece's evidence S 0.94, L5 0.06) or, as here, moved every level above up by one."""
    units = np.zeros((4, 4, 60), dtype=np.int32)
    evidence: list[dict[int, float]] = [
        {L3: 0.9, L4: 0.1},
        {L4: 0.9, L3: 0.05, L5: 0.05},
        {L5: 0.9, L4: 0.1},
        {SACRUM: 0.94, L5: 0.06},
        {SACRUM: 1.0},
        {SACRUM: 1.0},
    ]
    for number in range(1, len(evidence) + 1):
        top = 60 - (number - 1) * 10
        units[:, :, top - 8 : top] = number  # head at high z, equal sizes: all whole
    voxels = np.nonzero(units)
    probabilities = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
    for number, levels in enumerate(evidence, start=1):
        for level, p in levels.items():
            probabilities[VERTEBRA_LABELS.index(level), units[voxels] == number] = p
    labels, _ = name_units(units, probabilities, VERTEBRA_LABELS)
    named = [int(labels[0, 0, 60 - (n - 1) * 10 - 4]) for n in range(1, len(evidence) + 1)]
    assert named == [L3, L4, L5, SACRUM, SACRUM, SACRUM]


def test_a_detached_piece_joins_the_vertebra_at_its_level_and_a_bodiless_one_stands() -> None:
    vertebra, body_probability, truth = spine()
    depth = vertebra.shape[2]
    pad = np.zeros((vertebra.shape[0], vertebra.shape[1], 30), dtype=bool)
    vertebra = np.concatenate([pad, vertebra], axis=2)  # room below the last body
    body_probability = np.concatenate([pad.astype(np.float32), body_probability], axis=2)
    truth = np.concatenate([pad.astype(np.int32), truth], axis=2)
    level = 30 + depth - 4 - 2 * 20 - 8  # the middle of the third body
    piece = (slice(33, 40), slice(30, 40), slice(level - 4, level + 4))  # 7 x 10 x 8, apart
    vertebra[piece], truth[piece] = True, 3
    bodiless = (slice(12, 28), slice(20, 40), slice(5, 20))  # an arch-like block, no body
    vertebra[bodiless], truth[bodiless] = True, 6
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 6
    assert agreement(units, truth) > 0.95


def test_random_dips_give_increasing_cuts() -> None:
    """Splitting long intervals and joining short ones on random profiles (where they can
    undo each other: the loop stops at a repeated state) never duplicates or disorders a
    cut."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        profile = np.ones(300)
        for cut in np.sort(rng.choice(np.arange(5, 295), size=12, replace=False)):
            profile[cut - 1 : cut + 2] = rng.uniform(0.0, 0.6)
        cuts = profile_cuts(profile, 1.0)
        assert np.all(np.diff(cuts) > 0) and np.all((cuts > 0) & (cuts < len(profile)))


def test_an_odd_shift_leaves_no_vertebra_voxel_unlabelled() -> None:
    vertebra, body_probability, truth = spine()
    vertebra = np.roll(vertebra, 1, axis=(0, 1, 2))  # nothing on the even half-grid only
    body_probability = np.roll(body_probability, 1, axis=(0, 1, 2))
    truth = np.roll(truth, 1, axis=(0, 1, 2))
    units = body_units(vertebra, body_probability, SPACING)
    assert not (vertebra & (units == 0)).any()
    assert agreement(units, truth) > 0.95


def test_a_sliver_at_the_scan_end_is_a_vertebra_of_its_own() -> None:
    """The arch of the vertebra above the first body, cut by the field of view, lies apart
    from the vertebrae in view: at the scan's end it is a unit of its own (the labelling
    names it the next level up), however small; the same piece inside the scan is a
    fragment and dropped."""
    vertebra, body_probability, truth = spine()
    depth = vertebra.shape[2]
    sliver = (slice(14, 26), slice(10, 18), slice(depth - 3, depth))  # 1 cm3, top plane
    vertebra[sliver], truth[sliver] = True, 6
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 6
    assert agreement(units, truth) > 0.95
    assert len(np.unique(units[sliver])) == 1 and units[sliver][0, 0, 0] not in units[truth == 1]

    vertebra, body_probability, truth = spine()
    inside = (slice(0, 4), slice(10, 18), slice(depth // 2 - 10, depth // 2 - 2))  # apart
    vertebra[inside] = True
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 5 and not units[inside].any()


def test_a_sliver_beside_a_body_the_scan_end_cuts_is_part_of_that_vertebra() -> None:
    """Where the field of view cuts a body, a sliver at that end belongs to its vertebra (the
    vertebra beyond is the cut one), not to one more level beyond it."""
    vertebra, body_probability, truth = spine()
    keep = vertebra.shape[2] - 14  # the first body keeps 6 of its 16 planes, no pedicle
    vertebra, body_probability, truth = (
        a[:, :, :keep].copy() for a in (vertebra, body_probability, truth)
    )
    sliver = (slice(0, 4), slice(10, 18), slice(keep - 3, keep))  # 0.3 cm3, apart
    vertebra[sliver] = True
    units = body_units(vertebra, body_probability, SPACING)
    assert len(np.unique(units)) - 1 == 5
    cut_body = units[(truth == 1) & (body_probability > 0.5)]
    assert len(np.unique(cut_body)) == 1 and (units[sliver] == cut_body[0]).all()
    # asked for, the sliver stays apart and says whose it would be: the labelling decides
    hosts: dict[int, tuple[int, int, int]] = {}
    apart = body_units(vertebra, body_probability, SPACING, hosts=hosts)
    assert len(np.unique(apart)) - 1 == 6 and len(np.unique(apart[sliver])) == 1
    host = apart[(truth == 1) & (body_probability > 0.5)][0]
    assert hosts == {int(apart[sliver][0, 0, 0]): (int(host), 1, 0)}  # at the head end
    assert (np.where(apart == apart[sliver][0, 0, 0], host, apart) == units).all()


def test_a_sliver_reading_beyond_the_cut_body_is_the_vertebra_beyond() -> None:
    """At the scan's head end small pieces beside the cut first body are either that body's
    own arch or the spinous process of the vertebra above reaching down over it (phantom
    seeds 42, 46, 48). The level network tells them apart: a piece that reads a level above
    its host's name is that level, and all such pieces at one end are that one vertebra;
    one that reads as its host is part of it."""
    units = np.zeros((6, 6, 60), dtype=np.int32)
    units[:, :3, 50:60] = 1  # T12, cut by the scan's top
    units[:, :, 36:48] = 2  # L1
    units[:, :, 22:34] = 3  # L2
    units[:, :, 8:20] = 4  # L3
    units[4:, 4:, 57:60] = 5  # two slivers beside T12 in the top planes
    units[4:, :2, 57:60] = 6
    hosts = {5: (1, 1, 0), 6: (1, 1, 0)}
    voxels = np.nonzero(units)
    for reads, named in ((T12 - 1, [T12 - 1, T12]), (T12, [T12, T12])):
        levels = np.zeros((len(VERTEBRA_LABELS), len(voxels[0])), dtype=np.float32)
        for number, level in {1: T12, 2: L1, 3: L2, 4: L3, 5: reads, 6: reads}.items():
            levels[VERTEBRA_LABELS.index(level), units[voxels] == number] = 0.9
        labels, _, joined, _ = _name_with_slivers(units, levels, None, hosts)
        assert [int(labels[5, 5, 59]), int(labels[0, 0, 55])] == named, reads
        assert int(labels[5, 0, 59]) == named[0]  # the other sliver: the same vertebra
        assert joined[5, 0, 59] == joined[5, 5, 59]
        assert [int(labels[0, 0, z]) for z in (40, 30, 10)] == [L1, L2, L3]
        assert (joined[5, 5, 59] == joined[0, 0, 55]) == (named[0] == named[1])


def test_a_piece_at_the_scan_end_a_unit_holds_apart_is_left_to_the_labelling() -> None:
    """A sliver just behind the first body in the top planes, apart from it in the vertebra
    call but drawn with a body's probability (phantom seeds 43 and 55: the spinous process
    of the vertebra above): the profile counts it in the first body. Asked for, it is a
    unit of its own with that body's unit as its host, for the level evidence to decide."""
    vertebra, body_probability, truth = spine()
    depth = vertebra.shape[2]
    sliver = (slice(16, 24), slice(24, 28), slice(depth - 4, depth))  # 0.4 cm3
    vertebra[sliver], body_probability[sliver] = True, 0.8
    units = body_units(vertebra, body_probability, SPACING)
    top = int(units[truth == 1][0])
    assert (units[sliver] == top).all()
    hosts: dict[int, tuple[int, int, int]] = {}
    apart = body_units(vertebra, body_probability, SPACING, hosts=hosts)
    piece = int(apart[sliver][0, 0, 0])
    assert (apart[sliver] == piece).all() and piece != apart[truth == 1][0]
    assert hosts == {piece: (int(apart[truth == 1][0]), 1, 0)}
    assert agreement(np.where(apart == piece, 0, apart), truth) > 0.95
