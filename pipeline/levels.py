"""Vertebra levels in VerSe numbering and their anatomical order (head to feet).

VerSe labels: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 sacrum, 28 T13 (between T12 and L1).
"""

from __future__ import annotations

_NAMES: dict[int, str] = {
    **{n: f"C{n}" for n in range(1, 8)},
    **{n: f"T{n - 7}" for n in range(8, 20)},
    **{n: f"L{n - 19}" for n in range(20, 26)},
    26: "S",
    28: "T13",
}


def level_name(label: int) -> str:
    """ "L1" for VerSe label 20; raises ValueError for a label outside the VerSe scheme."""
    try:
        return _NAMES[label]
    except KeyError:
        raise ValueError(
            f"label {label} is not a VerSe vertebra label (1-26, 28); check the label map"
        ) from None


def is_vertebra_label(label: int) -> bool:
    return label in _NAMES


def anatomical_position(label: int) -> float:
    """Position along the spine, head to feet: T13 (28) sits between T12 (19) and L1 (20)."""
    if label == 28:
        return 19.5
    return float(label)


def are_adjacent(upper: int, lower: int) -> bool:
    """True when ``lower`` is the vertebra directly below ``upper`` (T12-T13-L1 aware)."""
    order = sorted(_NAMES, key=anatomical_position)
    i, j = order.index(upper), order.index(lower)
    return j == i + 1 or (upper == 19 and lower == 20)


def levels_apart(a: int, b: int) -> int:
    """How many levels separate two vertebrae: 1 for neighbours (T12 and L1 are neighbours
    whether or not a T13 exists), 0 for the same label."""
    order = sorted(_NAMES, key=anatomical_position)
    i, j = sorted((order.index(a), order.index(b)))
    t13 = order.index(28)
    return j - i - (1 if i < t13 < j else 0)
