"""An X-Ray Radiation Dose SR (TID 10011 "CT Radiation Dose") for a phantom's CT study.

The one helical acquisition of the synthetic CT, with plausible routine-abdomen values: what a
scanner sends to the PACS (and the PACS forwards to SpineScreen, which must ignore it).
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import XRayRadiationDoseSRStorage

from training.phantoms.dicom_common import (
    StudyIdentity,
    add_equipment,
    add_patient_and_study,
    add_series,
    add_sop_common,
    save_dataset,
)
from training.phantoms.dicom_writer import CTDI_VOL_MGY
from training.phantoms.types import CTPhantom

DOSE_SR_SERIES_NUMBER = 502
Code = tuple[str, str, str]  # value, scheme, meaning
_TARGET_REGION: dict[str, Code] = {
    "CHEST": ("51185008", "SCT", "Chest"),
    "ABDOMEN": ("818981001", "SCT", "Abdomen"),
    "CHESTABDPELVIS": ("416775004", "SCT", "Chest, Abdomen and Pelvis"),
    "CHESTABDOMEN": ("416550000", "SCT", "Chest and Abdomen"),
    "ABDOMENPELVIS": ("818982008", "SCT", "Abdomen and Pelvis"),
}


def write_dose_sr(
    phantom: CTPhantom, identity: StudyIdentity, body_part: str, folder: Path
) -> list[Path]:
    """``DOSE_SR/0001.dcm``: an X-Ray Radiation Dose SR of the CT acquisition."""
    ds = Dataset()
    add_patient_and_study(ds, identity, "CT SPINE PHANTOM")
    add_series(ds, identity, "SR", DOSE_SR_SERIES_NUMBER, "RADIATION DOSE REPORT")
    ds.ReferencedPerformedProcedureStepSequence = []
    add_equipment(ds)
    add_sop_common(ds, identity, XRayRadiationDoseSRStorage, "DOSE-SR", 1)
    del ds.ImageComments, ds.BurnedInAnnotation  # image attributes, not SR ones
    ds.InstanceNumber = 1
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = []
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(("113701", "DCM", "X-Ray Radiation Dose Report"))]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "10011"
    ds.ContentTemplateSequence = [template]
    ds.ContentSequence = _report_content(phantom, identity, body_part)
    return [save_dataset(ds, folder / "0001.dcm")]


def _report_content(phantom: CTPhantom, identity: StudyIdentity, body_part: str) -> list[Dataset]:
    length_mm = phantom.image_hu.shape[2] * phantom.spacing_mm[2]
    dlp = CTDI_VOL_MGY * length_mm / 10.0
    scope = _item("HAS OBS CONTEXT", "CODE", ("113705", "DCM", "Scope of Accumulation"))
    scope.ConceptCodeSequence = [_code(("113014", "DCM", "Study"))]
    study_uid = _item("HAS PROPERTIES", "UIDREF", ("110180", "DCM", "Study Instance UID"))
    study_uid.UID = identity.study_uid
    scope.ContentSequence = [study_uid]
    accumulated = _item("CONTAINS", "CONTAINER", ("113811", "DCM", "CT Accumulated Dose Data"))
    accumulated.ContinuityOfContent = "SEPARATE"
    accumulated.ContentSequence = [
        _num(("113812", "DCM", "Total Number of Irradiation Events"), 1, ("{events}", "events")),
        _num(("113813", "DCM", "CT Dose Length Product Total"), dlp, ("mGy.cm", "mGy.cm")),
    ]
    return [
        _coded("HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"), _CT_XRAY),
        _coded("HAS OBS CONTEXT", ("121005", "DCM", "Observer Type"), ("121007", "DCM", "Device")),
        _uid_item(("121012", "DCM", "Device Observer UID"), identity.uid("device-observer")),
        _text(("121013", "DCM", "Device Observer Name"), "PHANTOM"),
        _text(("121014", "DCM", "Device Observer Manufacturer"), "SpineScreen phantom"),
        scope,
        accumulated,
        _acquisition(phantom, identity, body_part, length_mm, dlp),
        _coded(
            "CONTAINS",
            ("113854", "DCM", "Source of Dose Information"),
            ("113856", "DCM", "Automated Data Collection"),
        ),
    ]


_CT_XRAY: Code = ("77477000", "SCT", "Computed Tomography X-Ray")


def _acquisition(
    phantom: CTPhantom, identity: StudyIdentity, body_part: str, length_mm: float, dlp: float
) -> Dataset:
    kvp = float(phantom.acquisition.get("kvp", 120.0))
    source = _item("CONTAINS", "CONTAINER", ("113831", "DCM", "CT X-Ray Source Parameters"))
    source.ContinuityOfContent = "SEPARATE"
    source.ContentSequence = [
        _text(("113832", "DCM", "Identification of the X-Ray Source"), "A"),
        _num(("113733", "DCM", "KVP"), kvp, ("kV", "kV")),
        _num(("113833", "DCM", "Maximum X-Ray Tube Current"), 250, ("mA", "mA")),
        _num(("113734", "DCM", "X-Ray Tube Current"), 200, ("mA", "mA")),
        _num(("113834", "DCM", "Exposure Time per Rotation"), 0.5, ("s", "s")),
    ]
    parameters = _item("CONTAINS", "CONTAINER", ("113822", "DCM", "CT Acquisition Parameters"))
    parameters.ContinuityOfContent = "SEPARATE"
    parameters.ContentSequence = [
        _num(("113824", "DCM", "Exposure Time"), round(length_mm / 40.0, 2), ("s", "s")),
        _num(("113825", "DCM", "Scanning Length"), round(length_mm, 1), ("mm", "mm")),
        _num(("113826", "DCM", "Nominal Single Collimation Width"), 0.6, ("mm", "mm")),
        _num(("113827", "DCM", "Nominal Total Collimation Width"), 38.4, ("mm", "mm")),
        _num(("113828", "DCM", "Pitch Factor"), 1.0, ("{ratio}", "ratio")),
        _num(("113823", "DCM", "Number of X-Ray Sources"), 1, ("{X-Ray sources}", "X-Ray sources")),
        source,
    ]
    dose = _item("CONTAINS", "CONTAINER", ("113829", "DCM", "CT Dose"))
    dose.ContinuityOfContent = "SEPARATE"
    dose.ContentSequence = [
        _num(("113830", "DCM", "Mean CTDIvol"), CTDI_VOL_MGY, ("mGy", "mGy")),
        _coded(
            "CONTAINS",
            ("113835", "DCM", "CTDIw Phantom Type"),
            ("113691", "DCM", "IEC Body Dosimetry Phantom"),
        ),
        _num(("113838", "DCM", "DLP"), round(dlp, 2), ("mGy.cm", "mGy.cm")),
    ]
    event = _item("CONTAINS", "UIDREF", ("113769", "DCM", "Irradiation Event UID"))
    event.UID = identity.uid("irradiation-event", 1)
    acquisition = _item("CONTAINS", "CONTAINER", ("113819", "DCM", "CT Acquisition"))
    acquisition.ContinuityOfContent = "SEPARATE"
    acquisition.ContentSequence = [
        _text(("125203", "DCM", "Acquisition Protocol"), "SPINE PHANTOM HELICAL"),
        _coded(
            "CONTAINS",
            ("123014", "DCM", "Target Region"),
            _TARGET_REGION.get(body_part, ("421060004", "SCT", "Spine")),
        ),
        _coded(
            "CONTAINS",
            ("113820", "DCM", "CT Acquisition Type"),
            ("116152004", "SCT", "Spiral Acquisition"),
        ),
        event,
        parameters,
        dose,
    ]
    return acquisition


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _item(relationship: str, value_type: str, concept: Code) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(concept)]
    return item


def _coded(relationship: str, concept: Code, value: Code) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = [_code(value)]
    return item


def _text(concept: Code, text: str) -> Dataset:
    relationship = "HAS OBS CONTEXT" if concept[0].startswith("1210") else "CONTAINS"
    item = _item(relationship, "TEXT", concept)
    item.TextValue = text
    return item


def _uid_item(concept: Code, uid: str) -> Dataset:
    item = _item("HAS OBS CONTEXT", "UIDREF", concept)
    item.UID = uid
    return item


def _num(concept: Code, value: float, unit: tuple[str, str]) -> Dataset:
    item = _item("CONTAINS", "NUM", concept)
    measured = Dataset()
    measured.NumericValue = f"{value:g}"
    measured.MeasurementUnitsCodeSequence = [_code((unit[0], "UCUM", unit[1]))]
    item.MeasuredValueSequence = [measured]
    return item
