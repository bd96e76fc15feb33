"""Realism report: HU per tissue beside published values, and pictures beside real CT.

Run ``python -m training.phantoms.realism --out DIR``. It generates one realistic phantom,
prints the median and interquartile range of HU per tissue next to the published range
(DOMAIN.md), and writes PNGs: the phantom's mid-sagittal and axial (L1) sections beside the
real CT in ``../shared/data/real/`` (``tptbox_l3`` NIfTI, ``ts_ct_dicom_uids`` JPEG 2000
series; skipped when absent), a lateral radiograph of the phantom when
:mod:`training.phantoms.radiograph` is available, and an overview picture
(``--overview PATH``, e.g. ``docs/images/phantom_overview.png``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.phantoms.generator import TissueMap, make_ct_phantom_with_tissues
from training.phantoms.params import PhantomParams, parse_fracture
from training.phantoms.torso import Tissue
from training.phantoms.types import CTPhantom

log = logging.getLogger(__name__)
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
PUBLISHED: dict[str, tuple[float, float]] = {  # DOMAIN.md
    "air": (-1000.0, -1000.0),
    "lung": (-950.0, -550.0),
    "fat": (-120.0, -50.0),
    "muscle": (10.0, 60.0),
    "blood (unenhanced)": (30.0, 65.0),
    "liver": (45.0, 70.0),
    "trabecular bone (L1)": (50.0, 250.0),
}
TISSUE_OF = {
    "air": Tissue.AIR,
    "lung": Tissue.LUNG,
    "fat": Tissue.FAT,
    "muscle": Tissue.MUSCLE,
    "blood (unenhanced)": Tissue.BLOOD,
    "liver": Tissue.LIVER,
}


@dataclass(frozen=True)
class TissueStat:
    name: str
    median: float
    q25: float
    q75: float
    published: tuple[float, float]

    @property
    def within(self) -> bool:
        low, high = self.published
        return low - 10.0 <= self.median <= high + 10.0


def report_phantom(seed: int = 0) -> tuple[CTPhantom, TissueMap]:
    params = PhantomParams(
        field_of_view="chest_abdomen_pelvis",
        contrast=False,
        kernel="soft",
        pixel_spacing_mm=0.8,
        slice_thickness_mm=1.5,
        fractures=[parse_fracture("L1:2:wedge"), parse_fracture("T8:1:biconcave")],
    )
    return make_ct_phantom_with_tissues(seed, params)


def tissue_stats(phantom: CTPhantom, tissues: TissueMap) -> list[TissueStat]:
    classes = tissues.full(phantom.image_hu.shape)
    soft = phantom.vertebrae == 0
    out = []
    for name, tissue in TISSUE_OF.items():
        core = ndimage.binary_erosion(classes == tissue, iterations=2) & soft
        out.append(_stat(name, phantom.image_hu[core]))
    l1 = next((v for v in phantom.vertebra_truth if v.level == "L1"), None)
    if l1 is not None:
        body = (phantom.vertebrae == l1.label) & (phantom.subregions == 1)
        out.append(
            _stat(
                "trabecular bone (L1)", phantom.image_hu[ndimage.binary_erosion(body, iterations=3)]
            )
        )
    return out


def _stat(name: str, values: NDArray[np.int16]) -> TissueStat:
    if values.size == 0:
        return TissueStat(name, float("nan"), float("nan"), float("nan"), PUBLISHED[name])
    q25, median, q75 = (float(v) for v in np.percentile(values, [25, 50, 75]))
    return TissueStat(name, median, q25, q75, PUBLISHED[name])


def format_stats(stats: list[TissueStat]) -> str:
    lines = [f"{'tissue':<22} {'median':>7} {'IQR':>15} {'published':>15}  ok"]
    for s in stats:
        iqr = f"{s.q25:.0f}..{s.q75:.0f}"
        pub = f"{s.published[0]:.0f}..{s.published[1]:.0f}"
        lines.append(
            f"{s.name:<22} {s.median:>7.0f} {iqr:>15} {pub:>15}  {'yes' if s.within else 'NO'}"
        )
    return "\n".join(lines)


def phantom_sections(phantom: CTPhantom) -> dict[str, tuple[NDArray[np.float32], float]]:
    """Mid-sagittal (through the spine) and axial (at L1) sections with their aspect ratio."""
    target = next((v for v in phantom.vertebra_truth if v.level == "L1"), phantom.vertebra_truth[0])
    i, _, k = np.rint(np.linalg.inv(phantom.affine) @ np.array([*target.body_centroid_mm, 1.0]))[:3]
    sx, sy, sz = phantom.spacing_mm
    image = phantom.image_hu
    sagittal = image[int(i), :, :].T[::-1].astype(np.float32)  # rows: superior at top
    axial = image[:, :, int(k)].T.astype(np.float32)  # rows: anterior at top, patient left right
    l3 = next((v for v in phantom.vertebra_truth if v.level == "L3"), target)
    ci, cj, ck = np.rint(np.linalg.inv(phantom.affine) @ np.array([*l3.body_centroid_mm, 1.0]))[:3]
    hj, hk = round(55.0 / sy), round(55.0 / sz)
    zoom = image[int(ci), max(int(cj) - hj, 0) : int(cj) + hj, max(int(ck) - hk, 0) : int(ck) + hk]
    return {
        "sagittal": (sagittal, sz / sy),
        "axial": (axial, sy / sx),
        "sagittal_zoom": (zoom.T[::-1].astype(np.float32), sz / sy),
    }


def real_sections() -> dict[str, tuple[NDArray[np.float32], float]]:
    """Sections of the real reference CT (empty when ../shared/data/real is absent)."""
    out: dict[str, tuple[NDArray[np.float32], float]] = {}
    tpt = REAL / "tptbox_l3" / "sub-ct_label-22_ct.nii.gz"
    if tpt.exists():
        import nibabel as nib

        image = nib.as_closest_canonical(nib.load(tpt))  # type: ignore[no-untyped-call]
        ras = np.asarray(image.dataobj, np.float32)  # RAS: i -> R, j -> A, k -> S
        mid = ras.shape[0] // 2
        out["real sagittal (TPTBox L3)"] = (ras[mid, ::-1, :].T[::-1], 1.0)
        out["real axial (TPTBox L3)"] = (ras[::-1, ::-1, ras.shape[2] // 2].T, 1.0)
    series = REAL / "ts_ct_dicom_uids"
    if series.exists():
        out["real axial (TotalSegmentator CT)"] = (_dicom_middle_slice(series), 1.0)
    return out


def _dicom_middle_slice(folder: Path) -> NDArray[np.float32]:
    import pydicom

    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.is_file()]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    ds = datasets[len(datasets) // 2]
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return hu


def radiograph_image(phantom: CTPhantom) -> NDArray[np.float32] | None:
    try:
        from training.phantoms.radiograph import make_radiograph
    except ImportError:
        log.info("no radiograph module: skipping the radiograph picture")
        return None
    radiograph = make_radiograph(phantom, view="lateral")
    return np.asarray(radiograph.image, np.float32)


def crop_to_body(image: NDArray[np.float32], margin: int = 8) -> NDArray[np.float32]:
    """The image cropped to its non-air extent (body and table)."""
    body = image > -500.0
    rows, cols = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    if rows.size == 0 or cols.size == 0:
        return image
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, image.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, image.shape[1])
    return image[r0:r1, c0:c1]


def save_panels(
    panels: dict[str, tuple[NDArray[np.float32], float]],
    path: Path,
    window: tuple[float, float] = (-250.0, 1250.0),
    dpi: int = 80,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5.2))
    for ax, (title, (full, aspect)) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        image = full if "radiograph" in title else crop_to_body(full)
        vmin, vmax = window if "radiograph" not in title else np.percentile(image, [1, 99])
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="bilinear")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_report(out: Path, seed: int, overview: Path | None) -> dict[str, Any]:
    phantom, tissues = report_phantom(seed)
    stats = tissue_stats(phantom, tissues)
    mine = phantom_sections(phantom)
    real = real_sections()
    real_sagittal = {k: v for k, v in real.items() if "sagittal" in k}
    real_axial = {k: v for k, v in real.items() if "axial" in k}
    zoom = {"phantom sagittal L3 (zoom)": mine["sagittal_zoom"]}
    save_panels(
        {"phantom sagittal": mine["sagittal"], **zoom, **real_sagittal},
        out / "phantom_sagittal.png",
    )
    save_panels(
        {"phantom axial L1": mine["axial"], **real_axial},
        out / "phantom_axial.png",
        window=(-200.0, 400.0),
    )
    panels = {
        "phantom sagittal": mine["sagittal"],
        **zoom,
        **real_sagittal,
        "phantom axial L1": mine["axial"],
        **{k: v for k, v in real_axial.items() if "TotalSegmentator" in k},
    }
    drr = radiograph_image(phantom)
    if drr is not None:
        save_panels({"phantom lateral radiograph": (drr, 1.0)}, out / "phantom_radiograph.png")
        panels["phantom lateral radiograph"] = (drr, 1.0)
    if overview is not None:
        save_panels(panels, overview, dpi=55)
    return {"phantom_id": phantom.phantom_id, "stats": stats, "real": sorted(real)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overview", type=Path, help="also write the overview picture here")
    args = parser.parse_args(argv)
    result = write_report(args.out, args.seed, args.overview)
    print(f"phantom {result['phantom_id']} (realistic, soft kernel, no contrast)")
    print(format_stats(result["stats"]))
    print(f"real reference CT: {', '.join(result['real']) or 'absent (skipped)'}")
    print(f"pictures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
