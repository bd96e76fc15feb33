"""Height measurement on a phantom's label map, with the project's shared definition.

On the mid-sagittal section of the vertebral body, along the vertebra's own superior-inferior
axis, at 10 / 50 / 90 % of the antero-posterior depth from the anterior surface. The local
axis comes from the truth's morphometry points (the superior and inferior points of a site
differ only along that axis); the extent is measured on the body mask, trilinearly
interpolated and cut at 0.5, so the result does not depend on the model's formulas.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from training.phantoms import CTPhantom, VertebraTruth

SITES = ("anterior", "middle", "posterior")


def measure_heights(
    phantom: CTPhantom, truth: VertebraTruth, step: float = 0.05
) -> dict[str, float]:
    pts = {k: np.array(p) for k, p in truth.morphometry_points_mm.items()}
    axis = pts["superior_posterior"] - pts["inferior_posterior"]
    axis /= np.linalg.norm(axis)
    inverse = np.linalg.inv(phantom.affine)
    mask = ((phantom.vertebrae == truth.label) & (phantom.subregions == 1)).astype(np.float32)
    t = np.arange(-45.0, 45.0, step)
    out = {}
    for site in SITES:
        centre = 0.5 * (pts[f"superior_{site}"] + pts[f"inferior_{site}"])
        line = centre[None, :] + t[:, None] * axis[None, :]
        vox = inverse[:3, :3] @ line.T + inverse[:3, 3:4]
        inside = ndimage.map_coordinates(mask, vox, order=1, mode="constant") >= 0.5
        mid = len(t) // 2
        if not inside[mid]:
            out[site] = 0.0
            continue
        below = np.nonzero(~inside[:mid])[0]
        above = np.nonzero(~inside[mid:])[0]
        lo = below[-1] + 1 if below.size else 0
        hi = mid + above[0] - 1 if above.size else len(t) - 1
        out[site] = float((hi - lo + 1) * step)
    return out


def ratio_loss(heights: dict[str, float]) -> float:
    return 1.0 - min(heights["anterior"], heights["middle"]) / heights["posterior"]


def genant(loss: float) -> int:
    return 3 if loss >= 0.40 else 2 if loss >= 0.25 else 1 if loss >= 0.20 else 0
