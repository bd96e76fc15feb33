"""dciodvfy validates the DX (for presentation) radiograph file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_phantom_dicom_dciodvfy import validator_messages
from tests.test_phantom_dicom_toy import make_toy_phantom
from training.phantoms.radiograph import make_radiograph, write_radiograph

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("view", ["lateral", "ap"])
def test_dciodvfy_reports_no_errors_on_the_dx(tmp_path: Path, view: str) -> None:
    phantom = make_toy_phantom(shape=(60, 48, 40), spacing=(5.0, 5.0, 5.0))
    write_radiograph(make_radiograph(phantom, view), tmp_path, "dicom")
    messages = validator_messages("dciodvfy", tmp_path / "image.dcm")
    errors = [m for m in messages if m.startswith("Error")]
    assert not errors, f"dciodvfy errors on the {view} DX: {errors}"
    assert not messages, f"dciodvfy warnings on the {view} DX: {messages}"
