"""The vertebral body as an analytic solid in its local frame, and its exact heights.

Local coordinates (mm): ``u`` lateral, ``v`` anterior, ``w`` superior, origin at the body
centre. The cross-section is a superellipse (half-width ``a``, half-depth ``b``) with a
shallow posterior notch for the canal; the endplates are surfaces ``w = top(u, v)`` and
``w = bottom(u, v)``: a linear anterior-posterior height profile (physiological wedging),
a central concavity, and fracture deformations (endplate displacement):

* wedge: the endplates hinge near the posterior wall and drop anteriorly (mostly superior);
* biconcave: both endplates sink centrally (Hm falls most);
* crush: the whole body is compressed uniformly (Hp falls against its expected height).

Heights follow the shared definition: on the mid-sagittal section (``u = 0``), along ``w``,
at 10 / 50 / 90 % of the antero-posterior depth from the anterior surface.
"""

# numpy arithmetic is typed as Any in its stubs; the shapes and dtypes are documented.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
EXPONENT = 2.5  # superellipse exponent of the body's cross-section
NOTCH = 0.08  # posterior notch depth as a fraction of the body depth
HINGE = 0.25  # wedge hinge, as a fraction of the depth from the posterior wall
SITES = {"anterior": 0.1, "middle": 0.5, "posterior": 0.9}


@dataclass(frozen=True)
class Deformation:
    """Endplate displacement of a fracture; ``amount`` in mm (wedge, biconcave) or a
    compression factor 0-1 (crush: heights scale by ``1 - amount``)."""

    kind: str = "normal"
    amount: float = 0.0
    superior_share: float = 0.8  # wedge: share of the drop taken by the superior endplate


@dataclass(frozen=True)
class SchmorlNode:
    u: float
    v: float
    radius: float
    depth: float
    superior: bool


@dataclass(frozen=True)
class BodyModel:
    width: float
    depth: float
    height_posterior: float
    wedge_ratio: float
    concavity_superior: float
    concavity_inferior: float
    deformation: Deformation = Deformation()
    schmorl: SchmorlNode | None = None

    @property
    def a(self) -> float:
        return 0.5 * self.width

    @property
    def b(self) -> float:
        return 0.5 * self.depth

    @property
    def v_anterior(self) -> float:
        return self.b

    @property
    def v_posterior(self) -> float:
        return -self.b + NOTCH * self.depth

    def site_v(self, fraction: float) -> float:
        """``v`` of the site ``fraction`` of the mid-sagittal depth behind the anterior surface."""
        return self.v_anterior - fraction * (self.v_anterior - self.v_posterior)

    def _nominal_half(self, v: F32 | float) -> F32 | float:
        span = self.v_anterior - self.v_posterior
        hp = self.height_posterior
        ha = hp * self.wedge_ratio
        # the profile runs through Hp and Ha exactly at the 90 % and 10 % sites
        v_p, v_a = self.v_anterior - 0.9 * span, self.v_anterior - 0.1 * span
        return 0.5 * (hp + (ha - hp) * (v - v_p) / (v_a - v_p))

    def surfaces(self, u: F32, v: F32) -> tuple[F32, F32]:
        """``top(u, v)`` and ``bottom(u, v)`` of the endplates (mm, local ``w``)."""
        rho = np.clip(1.0 - (u / self.a) ** 2 - (v / self.b) ** 2, 0.0, 1.0).astype(
            np.float32, copy=False
        )
        half = np.asarray(self._nominal_half(v), np.float32)
        top: F32 = half - np.float32(self.concavity_superior) * rho
        bottom: F32 = -half + np.float32(self.concavity_inferior) * rho
        d = self.deformation
        if d.kind == "wedge":
            span = self.v_anterior - self.v_posterior
            hinge = self.v_posterior + HINGE * span
            ramp = np.clip((v - hinge) / (self.v_anterior - hinge), 0.0, None).astype(
                np.float32, copy=False
            )
            top = top - np.float32(d.amount * d.superior_share) * ramp
            bottom = bottom + np.float32(d.amount * (1.0 - d.superior_share)) * ramp
        elif d.kind == "biconcave":
            dent = np.float32(d.amount) * rho**2.5
            top, bottom = top - dent, bottom + dent
        elif d.kind == "crush":
            keep = np.float32(1.0 - d.amount)
            top, bottom = top * keep, bottom * keep
        if self.schmorl is not None:
            top, bottom = self._schmorl(u, v, top, bottom)
        return top, bottom

    def _schmorl(self, u: F32, v: F32, top: F32, bottom: F32) -> tuple[F32, F32]:
        s = self.schmorl
        assert s is not None
        r2 = ((u - s.u) ** 2 + (v - s.v) ** 2) / s.radius**2
        pit = np.float32(s.depth) * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
        return (top - pit, bottom) if s.superior else (top, bottom + pit)

    def cross_section_sdf(self, u: F32, v: F32) -> F32:
        """Approximate signed distance (mm, negative inside) to the body's side walls."""
        au, av = np.abs(u / np.float32(self.a)), np.abs(v / np.float32(self.b))
        f = au * au * np.sqrt(au) + av * av * np.sqrt(av)  # superellipse, exponent 2.5
        # first-order distance: exact sign, accurate within a few mm of the surface
        side = (f - 1.0) * np.float32(min(self.a, self.b) / EXPONENT)
        notch_v = -self.b + NOTCH * self.depth * np.clip(1.0 - (u / (0.5 * self.a)) ** 2, 0, 1)
        return np.maximum(side, notch_v - v)

    def sdf(self, u: F32, v: F32, w: F32) -> F32:
        top, bottom = self.surfaces(u, v)
        return np.maximum(self.cross_section_sdf(u, v), np.maximum(w - top, bottom - w))

    def unfractured_heights(self) -> dict[str, float]:
        """Ha, Hm, Hp of the same body without its fracture (its shape before it)."""
        return replace(self, deformation=Deformation()).heights()

    def heights(self) -> dict[str, float]:
        """Exact Ha, Hm, Hp (mm) on the mid-sagittal section."""
        out = {}
        for name, fraction in SITES.items():
            u = np.zeros(1, np.float32)
            v = np.full(1, self.site_v(fraction), np.float32)
            top, bottom = self.surfaces(u, v)
            out[name] = float(top[0] - bottom[0])
        return out

    def points(self) -> dict[str, tuple[float, float, float]]:
        """Six morphometry points in local (u, v, w) coordinates."""
        out = {}
        for name, fraction in SITES.items():
            v = np.full(1, self.site_v(fraction), np.float32)
            top, bottom = self.surfaces(np.zeros(1, np.float32), v)
            out[f"superior_{name}"] = (0.0, float(v[0]), float(top[0]))
            out[f"inferior_{name}"] = (0.0, float(v[0]), float(bottom[0]))
        return out


def height_losses(
    heights: dict[str, float],
    expected_posterior: float,
    unfractured: dict[str, float] | None = None,
) -> tuple[float, float]:
    """(ratio loss, crush loss 1 - Hp / expected Hp).

    The ratio loss is 1 - min(Ha, Hm) / Hp as the body's shape stands; given the body's
    ``unfractured`` heights, each ratio is taken against its unfractured value instead,
    1 - min((Ha/Hp) / (Ha/Hp)_0, (Hm/Hp) / (Hm/Hp)_0): the height the fracture took, not
    the body's normal wedging (Ha/Hp about 0.9 at T11-L1, above 1.1 at L5) or concavity.
    """
    hp = heights["posterior"]
    if unfractured is None:
        ratio = 1.0 - min(heights["anterior"], heights["middle"]) / hp
    else:
        hp0 = unfractured["posterior"]
        ratio = 1.0 - min(
            (heights["anterior"] / hp) / (unfractured["anterior"] / hp0),
            (heights["middle"] / hp) / (unfractured["middle"] / hp0),
        )
    crush = 1.0 - hp / expected_posterior
    return ratio, crush


def genant_grade(height_loss: float) -> int:
    """Genant grade from the relative height loss: >= 20 % 1, >= 25 % 2, >= 40 % 3."""
    if height_loss >= 0.40:
        return 3
    if height_loss >= 0.25:
        return 2
    return 1 if height_loss >= 0.20 else 0
