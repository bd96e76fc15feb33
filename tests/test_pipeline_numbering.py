"""The numbering caveat (pipeline/numbering.py): transitional vertebrae and the last rib."""

from __future__ import annotations

import json

from pipeline.numbering import Numbering, assess_numbering

T5, T8, T9, T10, T11, T12, T13, L1, L2, L5, L6, S = 12, 15, 16, 17, 18, 19, 28, 20, 21, 24, 25, 26


def whole(*labels: int) -> list[tuple[int, bool]]:
    return [(label, True) for label in labels]


def test_ribs_ending_at_t12_with_lumbar_below_need_no_caveat() -> None:
    numbering = assess_numbering(whole(T10, T11, T12, L1, L2, S), frozenset({T10, T11, T12, S}))
    assert numbering.last_rib_bearing == "T12"
    assert numbering.rib_bearing == ("T10", "T11", "T12")  # the sacrum's ilia are no ribs
    assert numbering.caveat is None and numbering.transitional == ()
    assert numbering.to_json()["caveat"] is None


def test_a_rib_less_vertebra_named_t12_under_the_last_rib_gets_a_caveat() -> None:
    """11 rib pairs, or a spine named one level high (phantom seed 38): the count from C2
    tells them apart, so the reader is told to count."""
    numbering = assess_numbering(whole(T10, T11, T12, L1, L2), frozenset({T10, T11}))
    assert numbering.last_rib_bearing == "T11"
    assert numbering.caveat is not None
    assert "T11" in numbering.caveat and "T12" in numbering.caveat and "C2" in numbering.caveat
    # findings.json carries it and the demo reads it back
    assert Numbering.from_json(json.loads(json.dumps(numbering.to_json()))) == numbering


def test_a_cut_or_high_rib_less_vertebra_says_nothing_of_the_count() -> None:
    # the scan cuts T12: its rib may lie outside it
    vertebrae = [*whole(T10, T11), (T12, False)]
    assert assess_numbering(vertebrae, frozenset({T10, T11})).caveat is None
    # a whole T9 without ribs found under a rib-bearing T8: the rib finder missed it (11 rib
    # pairs end at T11), not a count one off
    assert assess_numbering(whole(T5, T8, T9), frozenset({T5, T8})).caveat is None


def test_ribs_on_a_lumbar_named_vertebra_get_a_caveat_at_the_scans_end_too() -> None:
    for vertebrae in (whole(T12, L1, L2, L5), whole(T10, T11, T12, L1)):
        numbering = assess_numbering(vertebrae, frozenset({T12, L1}))
        assert numbering.caveat is not None and numbering.caveat.startswith("L1 bears ribs")


def test_a_cut_off_junction_or_ribs_not_looked_for_say_nothing_of_the_last_rib() -> None:
    # the scan ends at the last rib-bearing vertebra: nothing below to tell
    assert assess_numbering(whole(T10, T11), frozenset({T10, T11})).caveat is None
    # a given label map: ribs were not looked for
    numbering = assess_numbering(whole(T11, T12, L1), None)
    assert numbering.rib_bearing is None and numbering.caveat is None
    assert "not looked for" in numbering.summary()


def test_a_named_transitional_vertebra_gets_a_caveat() -> None:
    cases = (
        (whole(T12, T13, L1, L5, S), frozenset({T12, T13}), "T13", True),
        (whole(L1, L5, L6, S), frozenset(), "L6", False),  # the ribs did not place it
        (whole(T12, T13, L1), None, "T13", False),  # a given label map: no ribs looked at
    )
    for vertebrae, ribs, name, by_ribs in cases:
        numbering = assess_numbering(vertebrae, ribs)
        assert numbering.transitional == (name,)
        assert numbering.caveat is not None and name in numbering.caveat
        assert ("and the ribs" in numbering.caveat) == by_ribs, numbering.caveat
