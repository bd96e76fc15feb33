"""A small, exact toy CTPhantom for the writer tests (independent of the anatomy generator).

Five vertebrae T11-L3 (VerSe 18-22) as elliptic cylinders whose height varies linearly from
posterior (Hp) to anterior (Ha), a cortical shell, discs, a posterior-element block, inside an
elliptic body of soft tissue and fat in air. L1 carries a wedge fracture (Ha = 0.62 Hp at the
anterior surface: grade 2).
Geometry is defined in RAS millimetres, so any affine (scaled, rotated) samples the same anatomy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from training.phantoms.types import CTPhantom, VertebraTruth

LEVELS = (("L3", 22), ("L2", 21), ("L1", 20), ("T12", 19), ("T11", 18))  # feet -> head
BODY_Y_MM = -40.0  # centre of the vertebral bodies (posterior half of the trunk)
DEPTH_MM, WIDTH_MM, HP_MM, DISC_MM = 32.0, 40.0, 25.0, 8.0
FRACTURED = "L1"
WEDGE_RATIO = 0.62


def rotation(about_x_deg: float, about_z_deg: float) -> NDArray[np.float64]:
    ax, az = np.radians(about_x_deg), np.radians(about_z_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def toy_affine(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    rot: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Scanner-like RAS affine (i to the left, j posterior, k up) centred on the origin."""
    linear = np.diag([-spacing[0], -spacing[1], spacing[2]])
    if rot is not None:
        linear = rot @ linear
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ ((np.array(shape) - 1) / 2.0)
    return affine


def _heights(y: NDArray[np.float64] | float, ha: float) -> NDArray[np.float64]:
    """Body height at antero-posterior position y (anterior surface: y = BODY_Y + D/2)."""
    fraction = (np.asarray(y) - (BODY_Y_MM - DEPTH_MM / 2)) / DEPTH_MM  # 0 posterior, 1 anterior
    return np.asarray(HP_MM + (ha - HP_MM) * np.clip(fraction, 0.0, 1.0), dtype=np.float64)


def _centres_z(count: int) -> list[float]:
    pitch = HP_MM + DISC_MM
    return [(n - (count - 1) / 2.0) * pitch for n in range(count)]


def make_toy_phantom(
    shape: tuple[int, int, int] = (160, 120, 80),
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.5),
    rot: NDArray[np.float64] | None = None,
    seed: int = 7,
    noise_hu: float = 8.0,
    phantom_id: str | None = None,
    levels: tuple[tuple[str, int], ...] = LEVELS,
) -> CTPhantom:
    affine = toy_affine(shape, spacing, rot)
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    x, y, z = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape(3, *shape)
    image = np.full(shape, -1000.0)
    trunk = (x / 150.0) ** 2 + (y / 110.0) ** 2
    image[trunk <= 1.0] = -90.0
    image[trunk <= 0.8] = 40.0
    vertebrae = np.zeros(shape, np.uint8)
    subregions = np.zeros(shape, np.uint8)
    section = (x / (WIDTH_MM / 2)) ** 2 + ((y - BODY_Y_MM) / (DEPTH_MM / 2)) ** 2 <= 1.0
    truths = []
    for (level, label), zc in zip(levels, _centres_z(len(levels)), strict=True):
        ha = HP_MM * WEDGE_RATIO if level == FRACTURED else HP_MM
        body = section & (np.abs(z - zc) <= _heights(y, ha) / 2)
        if not body.any():  # outside the field of view
            continue
        shell = body & ~_eroded(body)
        image[body] = 180.0
        image[shell] = 650.0
        posterior = (
            (np.abs(x) <= 12)
            & (y <= BODY_Y_MM - DEPTH_MM / 2 - 3)
            & (y >= BODY_Y_MM - DEPTH_MM / 2 - 28)
            & (np.abs(z - zc) <= 8)
        )
        image[posterior] = 500.0
        vertebrae[body | posterior] = label
        subregions[body] = 1
        subregions[posterior] = 2
        disc = section & (np.abs(z - zc - (HP_MM + DISC_MM) / 2) <= DISC_MM / 2 - 1) & ~body
        image[disc & (vertebrae == 0)] = 90.0
        truths.append(_truth(level, label, zc, ha, x, y, z, body, body | posterior))
    rng = np.random.default_rng(seed)
    image += rng.normal(0.0, noise_hu, shape) if noise_hu else 0.0
    return CTPhantom(
        phantom_id=phantom_id or f"toy{seed:04d}",
        seed=seed,
        mode="realistic",
        image_hu=np.rint(image).astype(np.int16),
        vertebrae=vertebrae,
        subregions=subregions,
        affine=affine,
        vertebra_truth=tuple(truths),
        acquisition={"slice_thickness_mm": spacing[2], "kernel": "soft", "contrast": False},
        params={"toy": True},
    )


def _eroded(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    from scipy import ndimage

    return np.asarray(ndimage.binary_erosion(mask), dtype=bool)


def _truth(
    level: str,
    label: int,
    zc: float,
    ha: float,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    z: NDArray[np.float64],
    body: NDArray[np.bool_],
    whole: NDArray[np.bool_],
) -> VertebraTruth:
    front = BODY_Y_MM + DEPTH_MM / 2
    at = {
        "anterior": front - 0.1 * DEPTH_MM,
        "middle": BODY_Y_MM,
        "posterior": front - 0.9 * DEPTH_MM,
    }
    heights = {name: float(_heights(yy, ha)) for name, yy in at.items()}
    points = {}
    for name, yy in at.items():
        points[f"superior_{name}"] = (0.0, yy, zc + heights[name] / 2)
        points[f"inferior_{name}"] = (0.0, yy, zc - heights[name] / 2)
    loss = 1.0 - heights["anterior"] / heights["posterior"]
    grade = 0 if loss < 0.2 else 1 if loss < 0.25 else 2 if loss < 0.4 else 3
    return VertebraTruth(
        label=label,
        level=level,
        complete=True,
        centroid_mm=_centre(x, y, z, whole),
        body_centroid_mm=_centre(x, y, z, body),
        heights_mm=heights,
        morphometry_points_mm=points,
        genant_grade=grade,
        morphology="wedge" if grade else "normal",
        height_loss=max(0.0, loss),
        bmd_class="normal",
        trabecular_hu=180.0,
    )


def _centre(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64], mask: NDArray[np.bool_]
) -> tuple[float, float, float]:
    return (float(x[mask].mean()), float(y[mask].mean()), float(z[mask].mean()))


def test_toy_phantom_truth_matches_its_masks() -> None:
    phantom = make_toy_phantom(shape=(80, 60, 40), spacing=(4.0, 4.0, 5.0), noise_hu=0.0)
    labels = sorted(int(v) for v in np.unique(phantom.vertebrae) if v)
    assert labels == [18, 19, 20, 21, 22], f"labels present {labels}"
    fractured = [v for v in phantom.vertebra_truth if v.genant_grade]
    assert [v.level for v in fractured] == [FRACTURED], f"fractured {fractured}"
    assert fractured[0].genant_grade == 2, f"grade {fractured[0].genant_grade}"
    inverse = np.linalg.inv(phantom.affine)
    for truth in phantom.vertebra_truth:
        i, j, k = np.rint(inverse @ np.array([*truth.body_centroid_mm, 1.0]))[:3].astype(int)
        assert phantom.vertebrae[i, j, k] == truth.label, f"{truth.level} centroid voxel {i, j, k}"
