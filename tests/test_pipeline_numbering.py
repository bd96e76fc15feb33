"""The numbering caveat (pipeline/numbering.py): transitional vertebrae and the last rib."""

from __future__ import annotations

from pipeline.numbering import assess_numbering

T10, T11, T12, T13, L1, L2, L5, L6, S = 17, 18, 19, 28, 20, 21, 24, 25, 26


def test_ribs_ending_at_t12_with_lumbar_below_need_no_caveat() -> None:
    numbering = assess_numbering([T10, T11, T12, L1, L2, S], frozenset({T10, T11, T12, S}))
    assert numbering.last_rib_bearing == "T12"
    assert numbering.rib_bearing == ("T10", "T11", "T12")  # the sacrum's ilia are no ribs
    assert numbering.caveat is None and numbering.transitional == ()
    assert numbering.to_json()["caveat"] is None


def test_a_rib_less_vertebra_named_t12_under_the_last_rib_gets_a_caveat() -> None:
    """11 rib pairs, or a spine named one level high (phantom seed 38): the count from C2
    tells them apart, so the reader is told to count."""
    numbering = assess_numbering([T10, T11, T12, L1, L2], frozenset({T10, T11}))
    assert numbering.last_rib_bearing == "T11"
    assert numbering.caveat is not None
    assert "T11" in numbering.caveat and "T12" in numbering.caveat and "C2" in numbering.caveat


def test_ribs_on_a_lumbar_named_vertebra_get_a_caveat() -> None:
    numbering = assess_numbering([T12, L1, L2, L5], frozenset({T12, L1}))
    assert numbering.caveat is not None and numbering.caveat.startswith("L1 bears ribs")


def test_a_cut_off_junction_or_ribs_not_looked_for_say_nothing_of_the_last_rib() -> None:
    # the scan ends at the last rib-bearing vertebra: nothing below to tell
    assert assess_numbering([T10, T11], frozenset({T10, T11})).caveat is None
    # a given label map: ribs were not looked for
    numbering = assess_numbering([T11, T12, L1], None)
    assert numbering.rib_bearing is None and numbering.caveat is None
    assert "not looked for" in numbering.summary()


def test_a_named_transitional_vertebra_gets_a_caveat() -> None:
    for levels, name in (([T12, T13, L1, L5, S], "T13"), ([L1, L5, L6, S], "L6")):
        numbering = assess_numbering(levels, frozenset())
        assert numbering.transitional == (name,)
        assert numbering.caveat is not None and name in numbering.caveat
