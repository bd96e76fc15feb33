"""The pipeline's own DICOM folder reader routes a phantom study and recovers the phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.volume import load_input
from tests.test_phantom_dicom import on_phantom_grid
from tests.test_phantom_dicom_toy import make_toy_phantom, rotation
from training.phantoms.dicom_writer import write_ct_study


def test_pipeline_selects_the_ct_series_and_reads_the_phantom(tmp_path: Path) -> None:
    phantom = make_toy_phantom(
        shape=(60, 48, 40), spacing=(4.0, 3.5, 4.0), rot=rotation(0.0, 8.0), seed=3
    )
    write_ct_study(phantom, tmp_path, "jpeg2000")
    routed = load_input(tmp_path)
    accepted = [d for d in routed.decisions if d.accepted]
    assert len(accepted) == 1, f"routing decisions: {routed.decisions}"
    volume = routed.volume
    hu = np.rint(np.asarray(volume.array)).astype(np.int32)
    diff = np.abs(on_phantom_grid(hu, np.asarray(volume.affine_ras), phantom) - phantom.image_hu)
    assert int(diff.max()) == 0, f"max HU difference {int(diff.max())} through the pipeline reader"
