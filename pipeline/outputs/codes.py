"""Codes used in SpineScreen's DICOM output.

Standard codes: SNOMED CT vertebrae (pydicom's concept tables), DCM and UCUM. No standard code
exists for the Genant semi-quantitative grade, the deformity types or our height measurements,
so they live in the private coding scheme ``99SPSCR`` declared in every SR's Coding Scheme
Identification Sequence and documented in the conformance statement (README, "Outputs").
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

PRIVATE_SCHEME = "99SPSCR"
PRIVATE_SCHEME_NAME = "SpineScreen private codes"


def private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


# SNOMED CT vertebra codes by level name (DOMAIN.md; pydicom concept tables).
VERTEBRA_CODES: dict[str, Code] = {
    "C1": codes.SCT.C1Vertebra, "C2": codes.SCT.C2Vertebra, "C3": codes.SCT.C3Vertebra,
    "C4": codes.SCT.C4Vertebra, "C5": codes.SCT.C5Vertebra, "C6": codes.SCT.C6Vertebra,
    "C7": codes.SCT.C7Vertebra, "T1": codes.SCT.T1Vertebra, "T2": codes.SCT.T2Vertebra,
    "T3": codes.SCT.T3Vertebra, "T4": codes.SCT.T4Vertebra, "T5": codes.SCT.T5Vertebra,
    "T6": codes.SCT.T6Vertebra, "T7": codes.SCT.T7Vertebra, "T8": codes.SCT.T8Vertebra,
    "T9": codes.SCT.T9Vertebra, "T10": codes.SCT.T10Vertebra, "T11": codes.SCT.T11Vertebra,
    "T12": codes.SCT.T12Vertebra, "L1": codes.SCT.L1Vertebra, "L2": codes.SCT.L2Vertebra,
    "L3": codes.SCT.L3Vertebra, "L4": codes.SCT.L4Vertebra, "L5": codes.SCT.L5Vertebra,
    "S": codes.SCT.Sacrum,
}  # fmt: skip
VERTEBRA: Code = codes.SCT.Vertebra  # transitional levels (L6, T13) have no own code
SPINE = codes.SCT.StructureOfVertebralColumn

FRACTURE_OF_BONE = Code("125605004", "SCT", "Fracture of bone")
PRESENT = codes.DCM.Present
ABSENT = codes.DCM.Absent
PROBABILITY = codes.DCM.Probability
COMMENT = codes.DCM.Comment
FINDING = codes.DCM.Finding
RECOMMENDATION = codes.DCM.Recommendation
CT_PROCEDURE = codes.SCT.ComputedTomography
MM = codes.UCUM.Millimeter
PERCENT = codes.UCUM.Percent
NO_UNITS = codes.UCUM.NoUnits

ANTERIOR_HEIGHT = private("VBH-A", "Anterior vertebral body height")
MIDDLE_HEIGHT = private("VBH-M", "Middle vertebral body height")
POSTERIOR_HEIGHT = private("VBH-P", "Posterior vertebral body height")
HEIGHT_LOSS = private("VBHL", "Vertebral body height loss")
GENANT_GRADE = private("GENANT", "Genant semiquantitative grade")
MORPHOLOGY = private("VCFTYPE", "Vertebral deformity type")
VCF_DETECTED = private("VCF", "Vertebral compression fracture detected")
HIGHEST_GRADE = private("GENANT-MAX", "Highest Genant grade in study")
FLS_REFERRAL = private("FLS", "Refer to Fracture Liaison Service")
NO_FLS_REFERRAL = private("NOFLS", "No Fracture Liaison Service referral indicated")
SPINE_SUMMARY = private("SPINESUM", "Spine fracture screening summary")

GENANT_GRADES: tuple[Code, ...] = (
    private("G0", "Genant grade 0 (normal)"),
    private("G1", "Genant grade 1 (mild, 20-25% height loss)"),
    private("G2", "Genant grade 2 (moderate, 25-40% height loss)"),
    private("G3", "Genant grade 3 (severe, >40% height loss)"),
)
MORPHOLOGIES: dict[str, Code] = {
    "normal": private("NODEF", "No deformity"),
    "wedge": private("WEDGE", "Wedge deformity"),
    "biconcave": private("BICONC", "Biconcave deformity"),
    "crush": private("CRUSH", "Crush deformity"),
}


def vertebra_code(level: str) -> Code:
    """The SNOMED CT code of a level ("T12"), or plain "Vertebra" for L6/T13."""
    return VERTEBRA_CODES.get(level, VERTEBRA)
