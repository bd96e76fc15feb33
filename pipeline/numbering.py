"""How far the level names can be trusted: the numbering caveat a radiologist adds.

Levels are named by counting along the spine in view (models/labelling.py). The count is
thrown by transitional anatomy, and a report that names a fracture "L1" on a spine with 11
rib pairs or an L6 may send the surgeon or the next reader to the wrong level. Radiologists
then say how they counted. Two situations are flagged here:

* a transitional vertebra (a T13 or an L6) was named: the count in this scan put one there;
  the count from C2 on a whole-spine image, or the ribs, may number the spine differently;
* the last rib-bearing vertebra (models/ribs.py) is named T10 or T11 and the next vertebra
  below it, held whole by the scan, bears none: either 11 rib pairs, a T12 without ribs, or
  the levels are one off (phantoms: a T10-L4 scan read one level high). A lumbar-named
  vertebra bearing ribs is the same question from the other side. Only the count from C2
  tells them apart.

The ribs the sacrum's top touches (the iliac crest, where its wings meet the ilia) and a
cervical rib say nothing about the thoracolumbar count: only T1-L6 and T13 are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.levels import anatomical_position, level_name

T12, T13, L6, SACRUM = 19, 28, 25, 26
_THORACOLUMBAR = frozenset({*range(8, 26), T13})
_LUMBAR = frozenset(range(20, 26))
# A last rib named here, a rib-less whole vertebra below it: 11 rib pairs (a rib-less T12
# named T12 would have its last rib at T11), or levels named one off (T10: a shifted T11).
# Higher up, a vertebra without ribs found says more of the rib finder than of the count.
_ELEVEN_RIBS = frozenset({17, 18})
_COUNT = "(count from C2 on a whole-spine localiser or prior imaging)"


@dataclass(frozen=True)
class Numbering:
    """``rib_bearing``: levels ribs touch, head to feet (None: ribs not looked for);
    ``caveat``: what to check before acting on a level, or None."""

    rib_bearing: tuple[str, ...] | None
    last_rib_bearing: str | None
    transitional: tuple[str, ...]
    caveat: str | None

    def summary(self) -> str:
        """One line for the terminal."""
        if self.rib_bearing is None:
            ribs = "ribs not looked for"
        elif self.last_rib_bearing is None:
            ribs = "no rib-bearing vertebra found"
        else:
            ribs = f"last rib-bearing vertebra {self.last_rib_bearing}"
        return f"numbering: {ribs}; " + (f"caveat: {self.caveat}" if self.caveat else "no caveat")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Numbering:
        """The inverse of ``to_json`` (findings.json's ``study.numbering``)."""
        bearing = data["rib_bearing"]
        return cls(
            rib_bearing=None if bearing is None else tuple(bearing),
            last_rib_bearing=data["last_rib_bearing"],
            transitional=tuple(data["transitional"]),
            caveat=data["caveat"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rib_bearing": None if self.rib_bearing is None else list(self.rib_bearing),
            "last_rib_bearing": self.last_rib_bearing,
            "transitional": list(self.transitional),
            "caveat": self.caveat,
        }


def assess_numbering(
    vertebrae: Iterable[tuple[int, bool]], rib_bearing: frozenset[int] | None
) -> Numbering:
    """The numbering of the vertebrae named in a study, as (VerSe label, complete) pairs,
    with the labels of those ribs touch (None where ribs were not looked for)."""
    complete = dict(vertebrae)
    present = sorted(complete, key=anatomical_position)
    transitional = tuple(level_name(v) for v in present if v in (T13, L6))
    caveats = []
    if transitional:
        ribs = " and the ribs" if T13 in present and rib_bearing is not None else ""
        caveats.append(
            f"A transitional vertebra ({', '.join(transitional)}) was named from the count of "
            f"vertebrae in this scan ({level_name(present[0])} to {level_name(present[-1])})"
            f"{ribs}; confirm the numbering {_COUNT} before acting on a level."
        )
    bearing: tuple[int, ...] | None = None
    last = None
    if rib_bearing is not None:
        bearing = tuple(v for v in present if v in rib_bearing and v in _THORACOLUMBAR)
        if bearing:
            last = bearing[-1]
            # the next vertebra down, held whole, without ribs (a cut one may have its rib
            # out of view)
            below = [
                v
                for v in present
                if anatomical_position(v) > anatomical_position(last)
                and v in _THORACOLUMBAR
                and v not in rib_bearing
            ][:1]
            if last in _LUMBAR:
                caveats.append(
                    f"{level_name(last)} bears ribs: a lumbar rib, or the levels are named one "
                    f"or more off; confirm the numbering {_COUNT} before acting on a level."
                )
            elif last in _ELEVEN_RIBS and below and complete[below[0]]:
                caveats.append(
                    f"The last rib-bearing vertebra is named {level_name(last)} and "
                    f"{level_name(below[0])} below it bears none: 11 rib pairs, or the levels "
                    f"are named one off; confirm the numbering {_COUNT} before acting on a "
                    "level."
                )
    return Numbering(
        rib_bearing=None if bearing is None else tuple(level_name(v) for v in bearing),
        last_rib_bearing=None if last is None else level_name(last),
        transitional=transitional,
        caveat=" ".join(caveats) or None,
    )
