"""``overview.png``: a sagittal reformat along the spine with each vertebra named and
coloured by grade, heights drawn on the fractured ones, "NOT FOR CLINICAL USE" burned in.

The reformat is a curved sagittal plane: for every height (LPS z) its left-right position
follows the vertebra centroids (interpolated), so a scoliotic spine stays in the plane; the
image is averaged over +-1.5 mm around it. Anterior is on the left, the head at the top.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from pipeline.morphometry import VertebraMeasurement
from pipeline.types import Finding, Volume
from spinescreen import CLINICAL_DISCLAIMER

log = logging.getLogger(__name__)

PIXEL_MM = 0.5
MARGIN_MM = 45.0
SLAB_MM = (-1.5, -0.75, 0.0, 0.75, 1.5)
WINDOW_HU = (-200.0, 900.0)  # shows trabecular bone (100-250 HU) and cortex
GRADE_COLOURS = {None: "#9e9e9e", 0: "#2e7d32", 1: "#f9a825", 2: "#ef6c00", 3: "#c62828"}


def render_overview(
    path: Path,
    labels: Volume,
    findings: tuple[Finding, ...],
    measurements: tuple[VertebraMeasurement, ...],
    image: Volume | None = None,
    title: str = "",
    caveat: str | None = None,
) -> Path:
    """Draw the overview and save it as PNG at ``path``; ``caveat`` (the numbering's,
    pipeline/numbering.py) is written under the picture, where the key image shows it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = _plane(labels, findings)
    label_plane = _sample(labels, grid, order=0)
    if image is not None:
        background = np.mean([_sample(image, grid, order=1, dx=d) for d in SLAB_MM], axis=0)
    else:
        background = np.where(label_plane > 0, 600.0, -200.0)
    y, z = grid[1], grid[2]
    extent = (float(y[0]), float(y[-1]), float(z[0]), float(z[-1]))
    height = 9.0
    width = max(4.0, height * (extent[1] - extent[0]) / max(extent[3] - extent[2], 1.0) + 2.5)
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.imshow(
        background, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], origin="lower",
        extent=extent, interpolation="bilinear",
    )  # fmt: skip
    by_label = {m.label: m for m in measurements}
    for finding in findings:
        _draw_vertebra(ax, label_plane, extent, finding, by_label.get(finding.label))
    ax.set_xlabel("anterior <-  (LPS y, mm)  -> posterior")
    ax.set_ylabel("LPS z (mm), head up")
    ax.set_title(title, fontsize=9)
    fig.text(0.5, 0.015, CLINICAL_DISCLAIMER, ha="center", color="#c62828", fontsize=8)
    if caveat:
        wrapped = textwrap.fill(f"Level numbering: {caveat}", width=round(14 * width))
        fig.text(0.5, -0.01, wrapped, ha="center", va="top", color="#ef6c00", fontsize=8)
    ax.text(
        0.5, 0.5, "NOT FOR CLINICAL USE", transform=ax.transAxes, ha="center", va="center",
        rotation=30, fontsize=22, color="white", alpha=0.25, weight="bold",
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", path)
    return path


def _plane(
    labels: Volume, findings: tuple[Finding, ...]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(x along z, y samples, z samples) of the curved sagittal plane, LPS mm."""
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, labels.shape[0] - 1) for j in (0, labels.shape[1] - 1)
         for k in (0, labels.shape[2] - 1)]
    )  # fmt: skip
    world = (labels.affine @ corners.T).T[:, :3]
    centroids = np.array([f.centroid_mm for f in findings]) if findings else world.mean(0)[None]
    order = np.argsort(centroids[:, 2])
    z_lo = max(world[:, 2].min(), centroids[:, 2].min() - MARGIN_MM)
    z_hi = min(world[:, 2].max(), centroids[:, 2].max() + MARGIN_MM)
    y_lo = max(world[:, 1].min(), centroids[:, 1].min() - 2 * MARGIN_MM)
    y_hi = min(world[:, 1].max(), centroids[:, 1].max() + 2 * MARGIN_MM)
    z = np.arange(z_lo, z_hi, PIXEL_MM)
    y = np.arange(y_lo, y_hi, PIXEL_MM)
    x = np.interp(z, centroids[order, 2], centroids[order, 0])
    return x, y, z


def _sample(
    volume: Volume,
    grid: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    order: int,
    dx: float = 0.0,
) -> NDArray[np.float64]:
    x, y, z = grid
    zz, yy = np.meshgrid(z, y, indexing="ij")
    xx = np.broadcast_to((x + dx)[:, None], zz.shape)
    points = np.stack([xx.ravel(), yy.ravel(), zz.ravel(), np.ones(zz.size)])
    index = (np.linalg.inv(volume.affine) @ points)[:3]
    cval = -1024.0 if volume.modality == "CT" else 0.0
    low = np.clip(np.floor(index.min(axis=1)).astype(int) - 1, 0, None)
    high = np.minimum(np.ceil(index.max(axis=1)).astype(int) + 2, volume.shape)
    if np.any(high <= low):
        return np.full(zz.shape, cval)
    crop = volume.array[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    values = ndimage.map_coordinates(
        np.asarray(crop, dtype=np.float32), index - low[:, None], order=order, cval=cval,
        mode="constant",
    )  # fmt: skip
    return np.asarray(values, dtype=np.float64).reshape(zz.shape)


def _draw_vertebra(
    ax: object,
    label_plane: NDArray[np.float64],
    extent: tuple[float, float, float, float],
    finding: Finding,
    measurement: VertebraMeasurement | None,
) -> None:
    grade = None if finding.genant_grade is None else int(finding.genant_grade)
    colour = GRADE_COLOURS[grade]
    mask = (label_plane == finding.label).astype(float)
    if mask.any():
        ax.contour(  # type: ignore[attr-defined]
            mask, levels=[0.5], colors=[colour], linewidths=1.4, origin="lower", extent=extent
        )
    text = finding.level if grade is None else f"{finding.level}  G{grade}"
    if not finding.complete:
        text += " (cut)"
    y, z = extent[0] + 4.0, finding.centroid_mm[2]
    ax.text(y, z, text, color=colour, fontsize=9, weight="bold", va="center")  # type: ignore[attr-defined]
    if grade and measurement is not None and measurement.endplate_points_mm:
        points = measurement.endplate_points_mm
        for site in ("anterior", "middle", "posterior"):
            top, bottom = points.get(f"{site}_superior"), points.get(f"{site}_inferior")
            if top and bottom:
                ax.plot([top[1], bottom[1]], [top[2], bottom[2]], color=colour, lw=1.2)  # type: ignore[attr-defined]
