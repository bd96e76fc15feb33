"""The findings as a DICOM Comprehensive 3D SR whose root is TID 1500 (Imaging Measurement Report).

Structure, one measurement group per complete (graded) vertebra:

* Tracking Identifier ("Vertebra T12") and a Tracking Unique Identifier that is stable for the
  same study and level, so viewers merge reports of re-analyses;
* Finding Site: the SNOMED CT code of the level; finding type "Vertebra";
* region: a SCOORD3D POINT at the vertebra centre in the series' Frame of Reference;
* qualitative evaluations: fracture present/absent (SCT 125605004), Genant grade and
  deformity type (private scheme 99SPSCR, declared in the Coding Scheme Identification);
* measurements: anterior, middle and posterior body height (mm), height loss (%), fracture
  probability (no units).

A study-level group carries "VCF detected", the highest grade, the fractured levels as finding
sites and a recommendation (FLS referral at or above the configured grade). The algorithm is
identified in every group and in the Contributing Equipment Sequence (IHE AIR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pipeline.outputs import codes as c
from pipeline.outputs.identity import DISCLAIMER_SHORT, AlgorithmIdentity, stable_uid
from spinescreen.errors import InputRejected

SR_SERIES_NUMBER = 9901
SR_DESCRIPTION = f"SpineScreen VCF report ({DISCLAIMER_SHORT})"


def build_sr(
    findings: Mapping[str, Any],
    evidence: Sequence[Dataset],
    identity: AlgorithmIdentity,
    *,
    fls_referral_grade: int = 2,
    predecessor: Dataset | None = None,
    series_instance_uid: str | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build the SR for ``findings`` (the findings.json contract) over the analysed series.

    ``evidence`` are datasets of the analysed series (headers suffice); ``predecessor`` is the
    earlier report of the same study, referenced in the Predecessor Documents Sequence.
    """
    if not evidence:
        raise InputRejected("an SR needs the analysed series as evidence; none was given")
    frame_of_reference = str(evidence[0].FrameOfReferenceUID)
    study_uid = str(evidence[0].StudyInstanceUID)
    algorithm = identity.algorithm_identification()
    groups: list[Any] = [
        _vertebra_group(v, frame_of_reference, study_uid, algorithm)
        for v in findings["vertebrae"]
        if v["complete"] and v.get("genant_grade") is not None
    ]
    groups.append(_study_group(findings["study"], study_uid, algorithm, fls_referral_grade))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=identity.device_observer()
        ),
        procedure_reported=c.CT_PROCEDURE,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report[0],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="SpineScreen open-source project",
        is_complete=True,
        previous_versions=[predecessor] if predecessor is not None else None,
        contributing_equipment=[identity.contributing_equipment()],
        series_description=SR_DESCRIPTION,
    )
    _declare_private_scheme(sr)
    return sr


def _vertebra_group(
    vertebra: Mapping[str, Any],
    frame_of_reference: str,
    study_uid: str,
    algorithm: hd.sr.AlgorithmIdentification,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    level = str(vertebra["level"])
    grade = int(vertebra["genant_grade"])
    heights = vertebra["heights_mm"]
    measurements = [
        hd.sr.Measurement(name=c.ANTERIOR_HEIGHT, value=float(heights["anterior"]), unit=c.MM),
        hd.sr.Measurement(name=c.MIDDLE_HEIGHT, value=float(heights["middle"]), unit=c.MM),
        hd.sr.Measurement(name=c.POSTERIOR_HEIGHT, value=float(heights["posterior"]), unit=c.MM),
        hd.sr.Measurement(
            name=c.HEIGHT_LOSS,
            value=round(100.0 * float(vertebra["height_loss"]), 1),
            unit=c.PERCENT,
        ),
    ]
    if vertebra.get("fracture_probability") is not None:
        measurements.append(
            hd.sr.Measurement(
                name=c.PROBABILITY, value=float(vertebra["fracture_probability"]), unit=c.NO_UNITS
            )
        )
    evaluations = [
        hd.sr.QualitativeEvaluation(c.FRACTURE_OF_BONE, c.PRESENT if grade >= 1 else c.ABSENT),
        hd.sr.QualitativeEvaluation(c.GENANT_GRADE, c.GENANT_GRADES[grade]),
        hd.sr.QualitativeEvaluation(c.MORPHOLOGY, c.MORPHOLOGIES[str(vertebra["morphology"])]),
    ]
    centre = np.asarray([vertebra["centroid_mm"]], dtype=np.float64)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid(study_uid, "vertebra", level), identifier=f"Vertebra {level}"
        ),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=centre,
            frame_of_reference_uid=frame_of_reference,
        ),
        finding_type=c.VERTEBRA,
        finding_sites=[hd.sr.FindingSite(c.vertebra_code(level))],
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _study_group(
    study: Mapping[str, Any],
    study_uid: str,
    algorithm: hd.sr.AlgorithmIdentification,
    fls_referral_grade: int,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    max_grade = int(study["max_grade"])
    refer = max_grade >= fls_referral_grade
    sites = [hd.sr.FindingSite(c.vertebra_code(str(lv))) for lv in study["fractured_levels"]]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid(study_uid, "study-summary"), identifier="Spine fracture screening"
        ),
        finding_type=c.SPINE_SUMMARY,
        finding_sites=sites or [hd.sr.FindingSite(c.SPINE)],
        algorithm_id=algorithm,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                c.VCF_DETECTED, c.PRESENT if study["fracture"] else c.ABSENT
            ),
            hd.sr.QualitativeEvaluation(c.HIGHEST_GRADE, c.GENANT_GRADES[max_grade]),
            hd.sr.QualitativeEvaluation(
                c.RECOMMENDATION, c.FLS_REFERRAL if refer else c.NO_FLS_REFERRAL
            ),
        ],
    )
    caveat = (study.get("numbering") or {}).get("caveat")
    if caveat:  # the level numbering's caveat (pipeline/numbering.py), as the reader sees it
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=c.COMMENT,
                value=f"Level numbering: {caveat}",
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _declare_private_scheme(sr: Dataset) -> None:
    item = Dataset()
    item.CodingSchemeDesignator = c.PRIVATE_SCHEME
    item.CodingSchemeName = c.PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "SpineScreen open-source project"
    existing = list(getattr(sr, "CodingSchemeIdentificationSequence", []))
    sr.CodingSchemeIdentificationSequence = [*existing, item]
