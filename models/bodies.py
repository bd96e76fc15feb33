"""Vertebra units from the outline stage: one per vertebral body, its posterior elements joined.

At 3 mm the first stage cannot say where one vertebra ends: a disc is a voxel, and the level
boundaries it draws fall inside bodies as often as in discs (measured on phantoms: a body cut
in two reads as a crush fracture). The outline stage at 1.5 mm sees the discs, though its
body call is not clean enough to fall apart into one piece per body in 3D (a rim, an
osteophyte or a blurred disc joins two). Along the spine, the discs are plain: the amount of
body met per millimetre of the spine's centre line dips at every disc. Here:

1. the *centre line*: per axial plane, the centroid of the outline's body probability,
   smoothed along the spine (CENTRE_LINE_SMOOTH_MM);
2. the *profile*: each body voxel near the line (within BODY_RADIUS_MM) counts, weighted by
   its body probability, at its nearest centre-line point (so a disc tilted by the spine's
   curve is still one dip);
3. the *cuts*: the profile's dips deeper than MIN_DIP of the local peak (DIP_WINDOW_MM around
   it; the profile padded with a whole body beyond an end that cuts a body, so the disc
   above a sliver of a body the field of view cut is a dip too), at least MIN_BODY_MM
   apart, and the deepest dip inside any interval LONG_INTERVAL times as long as its
   neighbours (two bodies, their disc blurred; the scan's superior end interval too, by its
   stretch in body), less the shallower cut of any interval SHORT_INTERVAL times as short
   (a dip inside a body); the body voxels between two cuts are one unit;
4. each unit grows through the outline's vertebra call, one voxel a step (at twice the
   outline spacing), so the posterior elements join the body their pedicles reach first (a
   geodesic, not a straight-line, nearest body: facet joints touch the next vertebra's arch,
   and a thoracic spinous process reaches down beside the next body);
5. vertebra left unreached of at least MIN_UNIT_MM3 joins the unit whose body spans its
   position along the centre line (within ORPHAN_REACH_MM: a transverse process or an arch
   the growth did not reach), or is a unit of its own where no body is (a vertebra whose
   body the outline missed); smaller pieces are dropped, except at the ends of the grid
   along the spine: a smaller piece there of at least EDGE_PIECE_MM3 is a unit of its own,
   wherever it lies, a sliver of the vertebra beyond the field of view (its arch or spinous
   process, its body out of view), which the labelling names the next level on, as VerSe's
   ground truth does; where the field of view cuts a body at that end (``_cut_ends``), or
   another piece there is a vertebra of its own, the sliver is part of that vertebra
   (phantom seed 30 and the real TPTBox crop: a piece of the cut vertebra's own arch, else
   named one level beyond it), unless the level network reads it beyond the cut body's
   name (``hosts``; models/segmenter.py: the spinous process of the vertebra beyond,
   reaching down over the cut body).

Finding vertebrae from the body profile along the spine curve is the classic way (the
vertebra-localisation literature before the CNNs); here it turns the outline into instances
without a third network."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal
from scipy.spatial import cKDTree

from models.labelling import MIN_UNIT_MM3, Label

BODY_THRESHOLD = 0.3  # body probability of the voxels that make the profile
CENTRE_LINE_SMOOTH_MM = 8.0
BODY_RADIUS_MM = 30.0  # a lumbar body is about 50 mm wide; spinous processes lie further
PROFILE_SMOOTH_MM = 1.5
MIN_DIP = 0.3  # a cut where the profile falls this far below its local peak
# An end of the profile this high (of its local peak) cuts a body; a disc reads 0.05-0.15
# there, the top plate of a cut sacrum 0.27 (phantom seed 42: under MIN_DIP, it stayed in
# L5's interval and was named L5).
END_BODY = 0.2
DIP_WINDOW_MM = 50.0
MIN_BODY_MM = 7.0  # cuts closer than this are one disc (a C3 body is about 12 mm high)
LONG_INTERVAL = 1.6  # a unit this much longer than its neighbours holds two bodies
SHORT_INTERVAL = 0.5  # ... and one this much shorter is part of a body
GROWTH_LIMIT_MM = 90.0  # a spinous process tip is at most this far from its body
ORPHAN_REACH_MM = 5.0  # a detached piece this far along the spine from a body joins it
EDGE_PIECE_MM3 = 100.0  # ... and one at the scan's end is kept from this size (a sliver)
CUT_BODY_SHARE = 0.75  # an end body this much shorter than the next is cut by the scan
_TOWARDS = {1: -1, 2: 1}  # grid end (1 inferior, 2 superior) -> direction along the spine
_CROSS = ndimage.generate_binary_structure(3, 1)
_CUBE = np.ones((3, 3, 3), dtype=bool)


def body_units(
    vertebra: NDArray[np.bool_],
    body_probability: NDArray[np.floating],
    spacing_mm: tuple[float, float, float],
    superior_axis: int = 2,
    hosts: dict[int, tuple[int, int, int]] | None = None,
) -> NDArray[np.int32]:
    """Units 1..n on the outline grid (0 outside the vertebrae), from the outline's vertebra
    call and body probability.

    With ``hosts`` (an empty dict, filled here) a sliver that would join the vertebra whose
    body the grid's end cuts stays a unit of its own, and so does a sliver-sized piece at
    the grid's end that a unit holds apart from the rest of the call; ``hosts[sliver] =
    (host, end, partner)`` says which unit it would join at which end (+1 the superior end,
    -1 the inferior one) and which sliver unit it joins otherwise (0: none, its own);
    the labelling decides (``models.segmenter``: a sliver whose level evidence reads beyond
    its host's name is the vertebra beyond)."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    weight = np.where(vertebra, body_probability, 0.0).astype(np.float32)
    line = centre_line(weight, spacing, superior_axis)
    units = np.zeros(vertebra.shape, dtype=np.int32)
    tree, span, reach, cut = None, {}, 0.0, {}
    if line is not None:
        found = np.nonzero(weight > BODY_THRESHOLD)
        tree = cKDTree(line)
        distance, position = tree.query(np.stack(found, axis=1) * spacing)
        near = distance <= BODY_RADIUS_MM
        position, found = position[near], tuple(axis[near] for axis in found)
        step = (
            float(np.median(np.linalg.norm(np.diff(line, axis=0), axis=1)))
            if len(line) > 1
            else float(spacing[superior_axis])
        )
        profile = np.bincount(position, weights=weight[found], minlength=len(line))
        relative = _relative_profile(profile.astype(np.float64), step)
        cuts = _cuts(relative, step)
        interval = np.searchsorted(cuts, position) + 1
        units[found] = interval
        span = {
            int(i): (int(position[interval == i].min()), int(position[interval == i].max()))
            for i in np.unique(interval)
        }
        reach = ORPHAN_REACH_MM / step
        cut = _cut_ends(relative, span)
    voxel_mm3 = float(np.prod(spacing))
    units = _drop_small(units, MIN_UNIT_MM3 / 8.0 / voxel_mm3)  # a body is a fraction of it
    units = _grow_coarse(units, vertebra, int(np.ceil(GROWTH_LIMIT_MM / (2 * spacing.min()))))
    orphans, count = ndimage.label(vertebra & (units == 0), structure=_CUBE)
    beyond: dict[int, int] = {}  # grid end (1 inferior, 2 superior) -> the vertebra beyond
    if count:
        sizes = np.bincount(orphans.ravel())
        lookup = np.zeros(count + 1, dtype=np.int32)
        held = set(np.unique(units).tolist())
        fresh = int(units.max(initial=0))
        end = np.zeros(count + 1, dtype=np.int8)  # pieces in the grid's end planes: 1, 2
        end[np.take(orphans, -1, superior_axis)] = 2
        end[np.take(orphans, 0, superior_axis)] = 1
        big_enough = sizes * voxel_mm3 >= MIN_UNIT_MM3
        sliver = (end > 0) & ~big_enough & (sizes * voxel_mm3 >= EDGE_PIECE_MM3)
        # slivers last, so that they can join a vertebra found beyond the same end
        kept = sorted(
            (int(p) for p in np.flatnonzero(big_enough | sliver) if p > 0), key=sliver.__getitem__
        )
        centres = ndimage.center_of_mass(orphans > 0, orphans, kept)
        beyond = {side: unit for side, unit in cut.items() if unit in held}  # end -> vertebra
        for piece, centre in zip(kept, centres, strict=True):
            # A piece at the level of a body already found is part of a vertebra (a
            # transverse process or an arch the growth did not reach); elsewhere it is a
            # vertebra whose body the outline missed. A sliver at the grid's end belongs to
            # the vertebra whose body that end cuts, where there is one; else it is the
            # vertebra beyond, even beside a body (an arch reaches down beside the body
            # below it), and all the slivers at one end are one vertebra.
            level = 0
            if sliver[piece]:
                level = beyond.get(int(end[piece]), 0)
                if level and hosts is not None and level in cut.values():
                    fresh += 1
                    lookup[piece] = fresh
                    hosts[fresh] = (level, _TOWARDS[int(end[piece])], 0)
                    continue
            elif tree is not None:
                at = tree.query(np.asarray(centre) * spacing)[1]
                beside = [
                    (abs(at - (lo + hi) / 2), unit)
                    for unit, (lo, hi) in span.items()
                    if unit in held and lo - reach <= at <= hi + reach
                ]
                level = min(beside)[1] if beside else 0
            if level:
                lookup[piece] = level
            else:
                fresh += 1
                lookup[piece] = fresh
                if end[piece]:
                    beyond[int(end[piece])] = fresh
        units = np.where(units > 0, units, lookup[orphans])
    if hosts is not None:
        partners = {_TOWARDS[e]: u for e, u in beyond.items() if u not in cut.values()}
        _detach_end_pieces(vertebra, units, voxel_mm3, superior_axis, hosts, partners)
    new = _renumbering(units)
    if hosts:
        moved = {
            int(new[sliver]): (int(new[host]), end, int(new[partner]))
            for sliver, (host, end, partner) in hosts.items()
        }
        hosts.clear()
        hosts.update(moved)
    out: NDArray[np.int32] = new[units]
    return out


def _detach_end_pieces(
    vertebra: NDArray[np.bool_],
    units: NDArray[np.int32],
    voxel_mm3: float,
    superior_axis: int,
    hosts: dict[int, tuple[int, int, int]],
    partners: dict[int, int],
) -> None:
    """Pieces of the vertebra call in the grid's end planes, sliver-sized and apart from the
    rest of the call, that one unit holds (the profile counted them in its body, or the
    growth at half resolution bridged a gap of a voxel or two to them): each becomes a unit
    of its own in ``units``, with ``hosts[piece] = (unit, end, partners[end])``, for the
    labelling to decide (phantom seeds 43 and 55 of 30-59: the spinous process of the
    vertebra beyond, 1.5-3 mm from the arch below it, drawn by the outline with a body's
    probability). ``partners[end]``: a sliver already standing for the vertebra beyond that
    end, which such a piece joins when it is no part of its host (0: none)."""
    pieces, _ = ndimage.label(vertebra, structure=_CUBE)
    sizes = np.bincount(pieces.ravel()) * voxel_mm3
    fresh = int(units.max(initial=0))
    for plane, end in ((-1, 1), (0, -1)):
        for piece in np.unique(np.take(pieces, plane, superior_axis)):
            if piece == 0 or not EDGE_PIECE_MM3 <= sizes[piece] < MIN_UNIT_MM3:
                continue
            inside = pieces == piece
            held = np.unique(units[inside])
            if len(held) != 1 or held[0] == 0 or (units == held[0]).sum() == inside.sum():
                continue  # not one unit's, or that unit's whole (a sliver already)
            fresh += 1
            units[inside] = fresh
            hosts[fresh] = (int(held[0]), end, partners.get(end, 0))


def centre_line(
    weight: NDArray[np.float32], spacing: NDArray[np.float64], superior_axis: int = 2
) -> NDArray[np.float64] | None:
    """(n, 3) points in mm, one per plane along ``superior_axis``: the weighted centroid of
    ``weight`` in each plane, interpolated across planes with little weight and smoothed."""
    moved = np.moveaxis(weight, superior_axis, -1)
    mass = moved.sum(axis=(0, 1))
    if not (mass > 0).any():
        return None
    ok = mass > 0.2 * np.median(mass[mass > 0])
    planes = np.arange(moved.shape[2])
    sigma = CENTRE_LINE_SMOOTH_MM / spacing[superior_axis]
    axes = [a for a in range(3) if a != superior_axis]
    points = np.zeros((len(planes), 3))
    for k, axis in enumerate(axes):
        along = np.arange(moved.shape[k], dtype=np.float64)
        shape = [1, 1, 1]
        shape[k] = -1
        centroid = (moved * along.reshape(shape)).sum(axis=(0, 1)) / np.maximum(mass, 1e-9)
        centroid = np.interp(planes, planes[ok], centroid[ok])
        points[:, axis] = ndimage.gaussian_filter1d(centroid, sigma) * spacing[axis]
    points[:, superior_axis] = planes * spacing[superior_axis]
    return points


def profile_cuts(profile: NDArray[np.float64], step_mm: float) -> NDArray[np.intp]:
    """Positions along the centre line where the body profile dips (the discs)."""
    return _cuts(_relative_profile(profile, step_mm), step_mm)


def _cuts(relative: NDArray[np.float64], step_mm: float) -> NDArray[np.intp]:
    """``profile_cuts`` on the profile already relative to its local peak."""
    # Where the field of view cuts a body, the spine goes on beyond it: that end is padded
    # with a whole body, so the disc above a few millimetres of the next body is a dip like
    # any other (unpadded, the sliver's low rise was the dip's only base, and the sliver
    # joined the body below it; phantoms: a cut C6, T3, T9 at the top of the scan). An end
    # with no body (the profile past the spine, or a scan ending in a disc) is not padded:
    # it would turn the empty stretch into a dip and the end body into an inner interval.
    n = len(relative)
    first, last = _ends_in_body(relative)
    before, after = (n if first else 0), (n if last else 0)
    padded = np.concatenate([np.ones(before), relative, np.ones(after)])
    found, _ = signal.find_peaks(
        -padded, prominence=MIN_DIP, distance=max(1, int(np.ceil(MIN_BODY_MM / step_mm)))
    )
    cuts = [int(c) - before for c in found if 0 < int(c) - before < n - 1]
    return _split_long(cuts, relative)


def _cut_ends(relative: NDArray[np.float64], span: dict[int, tuple[int, int]]) -> dict[int, int]:
    """The body interval the field of view cuts at the profile's start (1) and end (2),
    where one does: the profile is still high there (as in ``profile_cuts``) and the
    interval is under CUT_BODY_SHARE of the next one's length (an interval holding a whole
    body and a sliver of the next one's end plate is not the cut vertebra)."""
    order = sorted(span)
    if len(order) < 2:
        return {}
    length = {i: hi - lo + 1 for i, (lo, hi) in span.items()}
    ends = ((1, order[0], order[1]), (2, order[-1], order[-2]))
    return {
        side: end
        for (side, end, inner), in_body in zip(ends, _ends_in_body(relative), strict=True)
        if in_body and length[end] < CUT_BODY_SHARE * length[inner]
    }


def _ends_in_body(relative: NDArray[np.float64]) -> tuple[bool, bool]:
    """Whether the profile's start and end lie in a body (END_BODY of the local peak)."""
    return bool(relative[0] > END_BODY), bool(relative[-1] > END_BODY)


def _relative_profile(profile: NDArray[np.float64], step_mm: float) -> NDArray[np.float64]:
    """The smoothed profile as a share of its local peak (DIP_WINDOW_MM around each point)."""
    smooth = ndimage.gaussian_filter1d(profile, PROFILE_SMOOTH_MM / step_mm)
    window = max(3, round(DIP_WINDOW_MM / step_mm) | 1)
    peak = ndimage.maximum_filter1d(smooth, window)
    relative: NDArray[np.float64] = smooth / np.maximum(peak, 1e-9)
    return relative


def _split_long(cuts: list[int], relative: NDArray[np.float64]) -> NDArray[np.intp]:
    """Cut an interval LONG_INTERVAL times as long as the (up to four) intervals around it at
    its deepest inner dip (in its middle half; at its middle when the profile has none
    there): two bodies whose disc dipped less than MIN_DIP. Join an interval shorter than
    SHORT_INTERVAL times theirs to a neighbour, across the shallower of its two cuts (a dip
    inside a body: an end-plate depression, a fracture line). The first interval (the
    sacrum, or a body the field of view cuts) is not judged; the last, superior one is only
    split, by its stretch in body (to where the profile last rises above END_BODY) and at a
    dip there: a whole body and the one the scan's top cuts, their disc blurred (phantom
    seeds 108 and 127: the pair was one unit, and the levels above it one off)."""
    seen: set[tuple[int, ...]] = set()
    for _ in range(4 * (len(cuts) + 2)):  # each pass changes one cut; bounded all the same
        if tuple(cuts) in seen:
            break  # a split and a join undoing each other: stop where the cycle began
        seen.add(tuple(cuts))
        bounds = [0, *cuts, len(relative)]
        lengths = np.diff(bounds)
        changed = False
        last = len(lengths) - 1
        for i in range(1, len(lengths)):
            around = [lengths[j] for j in (i - 2, i - 1, i + 1, i + 2) if 0 < j < last]
            if not around:
                continue
            typical = float(np.median(around))
            if i == last:
                in_body = np.flatnonzero(relative[bounds[i] :] > END_BODY)
                stop = bounds[i] + (int(in_body[-1]) + 1 if in_body.size else 0)
                long = stop - bounds[i] >= LONG_INTERVAL * typical
                cut = _inner_dip(relative, bounds[i], stop) if long else None
                if cut is not None and min(cut - bounds[i], stop - cut) > SHORT_INTERVAL * typical:
                    cuts = [*cuts, cut]
                    changed = True
                break
            if lengths[i] <= SHORT_INTERVAL * typical:
                upper, lower = cuts[i - 1], cuts[i]  # bounds[i], bounds[i + 1]
                shallower = upper if relative[upper] > relative[lower] else lower
                joined = lengths[i] + (lengths[i - 1] if shallower == upper else lengths[i + 1])
                if joined < LONG_INTERVAL * typical:
                    cuts = [c for c in cuts if c != shallower]
                    changed = True
                    break
            if lengths[i] < LONG_INTERVAL * typical:
                continue
            start, stop = bounds[i], bounds[i + 1]
            cut = _inner_dip(relative, start, stop)
            if cut is None:
                cut = (start + stop) // 2
            if min(cut - start, stop - cut) > SHORT_INTERVAL * typical:
                cuts = sorted([*cuts, cut])
                changed = True
                break
        if not changed:
            break
    return np.asarray(cuts, dtype=np.intp)


def _inner_dip(relative: NDArray[np.float64], start: int, stop: int) -> int | None:
    """The deepest dip in the middle half of ``relative[start:stop]``; None where it has
    none."""
    margin = (stop - start) // 4
    inner = relative[start + margin : stop - margin]
    dips, _ = signal.find_peaks(-inner)
    if not dips.size:
        return None
    return start + margin + int(dips[np.argmin(inner[dips])])


def _drop_small(units: NDArray[np.int32], min_voxels: float) -> NDArray[np.int32]:
    sizes = np.bincount(units.ravel())
    small = sizes < min_voxels
    small[0] = True
    out: NDArray[np.int32] = np.where(small[units], 0, units).astype(np.int32)
    return out


def _grow_coarse(
    units: NDArray[np.int32], mask: NDArray[np.bool_], steps: int
) -> NDArray[np.int32]:
    """``grow_through`` at half resolution (a voxel in eight), back to the full grid for the
    voxels the units did not already hold."""
    grown = grow_through(units[::2, ::2, ::2], mask[::2, ::2, ::2], steps)
    index = np.ix_(*(np.arange(n) // 2 for n in units.shape))
    out: NDArray[np.int32] = np.where(units > 0, units, np.where(mask, grown[index], 0))
    # voxels whose coarse parent lies outside the mask: up to three full-resolution steps
    # (one per axis along which the voxel's index is odd)
    return grow_through(out.astype(np.int32), mask, 3)


def grow_through(seeds: NDArray[Label], mask: NDArray[np.bool_], steps: int) -> NDArray[Label]:
    """``seeds`` grown through ``mask`` one face-neighbour a step (a geodesic nearest seed; a
    voxel two seeds reach in the same step takes the larger number)."""
    labels = seeds.copy()
    found = ndimage.find_objects((mask | (seeds > 0)).astype(np.uint8))
    if not found or found[0] is None:
        return labels
    box = found[0]
    inner, open_ = labels[box], mask[box] & (labels[box] == 0)
    for _ in range(steps):
        grown = ndimage.grey_dilation(inner, footprint=_CROSS)
        new = open_ & (grown > 0)
        if not new.any():
            break
        inner[new] = grown[new]
        open_ &= ~new
    return labels


def _renumbering(units: NDArray[np.int32]) -> NDArray[np.int32]:
    """Unit number -> 1..n in order of the numbers present (0 stays 0)."""
    present = np.unique(units)
    present = present[present > 0]
    lookup = np.zeros(int(units.max(initial=0)) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, len(present) + 1)
    return lookup
