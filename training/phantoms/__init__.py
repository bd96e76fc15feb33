"""Synthetic spine phantoms with exact ground truth (training, tests, demo; never the runtime).

Public API: :class:`PhantomParams`, :func:`make_ct_phantom`, :func:`write_ct_nifti` and the
result types :class:`CTPhantom` and :class:`VertebraTruth`. The generator is deterministic:
the same ``(seed, params)`` gives bit-identical arrays.

Module map: ``params`` (knobs), ``subject`` (random draws), ``anatomy`` (level tables, spine
frames), ``vertebral_body`` (analytic body, exact heights), ``fractures`` (grading rule,
deformities, confounders), ``spine`` / ``skeleton`` (bone rasterisation), ``torso`` /
``organs`` (coarse soft tissue), ``appearance`` / ``artefacts`` (HU, noise, streaks),
``truth``, ``nifti`` (writer), ``realism`` (report). The Genant grading rule of the ground
truth is documented in :mod:`training.phantoms.fractures`.
"""

from training.phantoms.generator import make_ct_phantom
from training.phantoms.nifti import ground_truth_record, write_ct_nifti
from training.phantoms.params import FractureRequest, PhantomParams, parse_fracture
from training.phantoms.types import CTPhantom, VertebraTruth

__all__ = [
    "CTPhantom",
    "FractureRequest",
    "PhantomParams",
    "VertebraTruth",
    "ground_truth_record",
    "make_ct_phantom",
    "parse_fracture",
    "write_ct_nifti",
]
