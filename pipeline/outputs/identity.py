"""Who made a result: algorithm identity per IHE AI Results (AIR)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom.sr.codedict import codes

from spinescreen import __version__

MANUFACTURER = "SpineScreen open-source project"
DISCLAIMER_SHORT = "AI OUTPUT - NOT FOR CLINICAL USE"
UID_ROOT = "2.25."


@dataclass(frozen=True)
class AlgorithmIdentity:
    """The algorithm behind a result; ``device_uid`` changes whenever any weights change."""

    name: str
    version: str
    device_uid: str
    model_versions: tuple[str, ...] = ()

    @classmethod
    def from_models(cls, model_cards: Sequence[tuple[str, str, str]]) -> AlgorithmIdentity:
        """Identity from (name, version, sha256) of each model used; no models: measurement only."""
        parts = [f"{name} {version}" for name, version, _ in model_cards]
        entropy = [__version__, *(f"{n}:{v}:{h}" for n, v, h in model_cards)]
        return cls(
            name="SpineScreen VCF",
            version=__version__,
            device_uid=stable_uid(*entropy),
            model_versions=tuple(parts) or ("morphometry only",),
        )

    def algorithm_identification(self) -> hd.sr.AlgorithmIdentification:
        return hd.sr.AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=list(self.model_versions),
            manufacturer=MANUFACTURER,
        )

    def contributing_equipment(self) -> hd.ContributingEquipment:
        item = hd.ContributingEquipment(
            manufacturer=MANUFACTURER,
            purpose_of_reference=codes.DCM.ProcessingEquipment,
            manufacturer_model_name=self.name,
            software_versions=[self.version, *self.model_versions],
            contribution_description=f"Vertebral fracture screening; {DISCLAIMER_SHORT}",
        )
        item.DeviceUID = self.device_uid
        return item

    def device_observer(self) -> hd.sr.ObserverContext:
        return hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=self.device_uid,
                name=self.name,
                manufacturer_name=MANUFACTURER,
                model_name=self.name,
            ),
        )


def stable_uid(*parts: str) -> str:
    """A UID under 2.25 (UUID-derived) that is the same for the same parts.

    Used for tracking identifiers (study UID + level) and device UIDs (weights' hashes).
    """
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:16]
    return UID_ROOT + str(int.from_bytes(digest, "big"))
