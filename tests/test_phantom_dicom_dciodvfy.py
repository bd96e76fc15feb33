"""dicom3tools validate the written study: dciodvfy per object, dcentvfy across the study."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.dicom_writer import write_ct_study

pytestmark = pytest.mark.integration


# dcentvfy files AccessionNumber under the Series IE for the X-Ray Radiation Dose SR IOD and
# under Study for the image IODs, and warns about that difference even when values agree.
IE_QUIRK = "Different information entities for attribute - Element=<AccessionNumber>"


def entity_problems(*paths: Path) -> list[str]:
    """dcentvfy messages across a study, without its AccessionNumber IE quirk."""
    return [m for m in validator_messages("dcentvfy", *paths) if IE_QUIRK not in m]


def validator_messages(tool: str, *paths: Path) -> list[str]:
    executable = require_tool(tool, "dicom3tools")
    done = subprocess.run(
        [executable, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False
    )
    lines = (done.stdout + done.stderr).splitlines()
    return [line for line in lines if line.startswith(("Error", "Warning"))]


@pytest.mark.parametrize("syntax", ["explicit", "jpeg2000", "rle"])
def test_dciodvfy_reports_no_errors_or_warnings(tmp_path: Path, syntax: str) -> None:
    phantom = make_toy_phantom(shape=(48, 40, 12), spacing=(6.0, 5.0, 15.0))
    files = write_ct_study(phantom, tmp_path, syntax)  # type: ignore[arg-type]
    picked = [files[0], files[-4], *[p for p in files if p.parent.name != "CT"]]
    assert {p.parent.name for p in picked} == {"CT", "LOCALIZER", "DOSE", "DOSE_SR"}
    for path in picked:
        messages = validator_messages("dciodvfy", path)
        errors = [m for m in messages if m.startswith("Error")]
        assert not errors, f"dciodvfy errors on {path.parent.name}/{path.name}: {errors}"
        assert not messages, f"dciodvfy warnings on {path.parent.name}/{path.name}: {messages}"


def test_dcentvfy_finds_the_study_consistent(tmp_path: Path) -> None:
    phantom = make_toy_phantom(shape=(48, 40, 12), spacing=(6.0, 5.0, 15.0))
    files = write_ct_study(phantom, tmp_path)
    messages = entity_problems(*files)
    assert not messages, f"dcentvfy: {messages}"


@pytest.mark.parametrize("contrast", [False, True], ids=["plain", "contrast"])
def test_dciodvfy_on_a_generated_phantom(tmp_path: Path, contrast: bool) -> None:
    from training.phantoms import PhantomParams, make_ct_phantom

    params = PhantomParams(
        matrix=80, pixel_spacing_mm=5.0, slice_thickness_mm=5.0, slice_count=12, contrast=contrast
    )
    files = write_ct_study(make_ct_phantom(8, params), tmp_path, "jpeg2000")
    for path in (files[0], *[p for p in files if p.parent.name != "CT"]):
        messages = validator_messages("dciodvfy", path)
        assert not messages, f"dciodvfy on {path.parent.name}/{path.name}: {messages}"
    assert not entity_problems(*files), "dcentvfy found inconsistencies"
