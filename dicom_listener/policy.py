"""Who may associate: calling AE and IP allowlists, called AE title, load and disk space.

A refused association gets an A-ASSOCIATE-RJ with the DICOM result/source/diagnostic that
fits, and the reason is logged (AE titles and addresses, never patient data).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from dicom_listener.settings import ListenerSettings

# (result, source, diagnostic) of A-ASSOCIATE-RJ, PS3.8 table 9-21.
PERMANENT, TRANSIENT = 0x01, 0x02
SERVICE_USER, SERVICE_PROVIDER_PRESENTATION = 0x01, 0x03
NO_REASON, CALLING_AE_NOT_RECOGNISED, CALLED_AE_NOT_RECOGNISED = 0x01, 0x03, 0x07
TEMPORARY_CONGESTION, LOCAL_LIMIT_EXCEEDED = 0x01, 0x02


@dataclass(frozen=True)
class Refusal:
    reason: str
    result: int
    source: int
    diagnostic: int


@dataclass(frozen=True)
class AssociationRequest:
    calling_ae: str
    called_ae: str
    address: str
    active_associations: int  # including this one


class AssociationPolicy:
    def __init__(self, config: ListenerSettings, free_mb: Callable[[], float]) -> None:
        self.config = config
        self.free_mb = free_mb
        self.networks = [ipaddress.ip_network(n, strict=False) for n in config.allowed_networks]
        self.calling_titles = {t.strip() for t in config.allowed_calling_ae_titles}

    def refusal(self, request: AssociationRequest) -> Refusal | None:
        """Why ``request`` must be refused, or None to accept it."""
        cfg = self.config
        if self.networks and not self._address_allowed(request.address):
            return Refusal(
                f"client address {request.address} is not in allowed_networks",
                PERMANENT,
                SERVICE_USER,
                NO_REASON,
            )
        if self.calling_titles and request.calling_ae.strip() not in self.calling_titles:
            return Refusal(
                f"calling AE title {request.calling_ae!r} is not in allowed_calling_ae_titles",
                PERMANENT,
                SERVICE_USER,
                CALLING_AE_NOT_RECOGNISED,
            )
        if cfg.require_called_ae_title and request.called_ae.strip() != cfg.ae_title.strip():
            return Refusal(
                f"called AE title {request.called_ae!r} is not ours ({cfg.ae_title!r})",
                PERMANENT,
                SERVICE_USER,
                CALLED_AE_NOT_RECOGNISED,
            )
        if request.active_associations > cfg.max_associations:
            return Refusal(
                f"{request.active_associations} associations exceed max_associations "
                f"{cfg.max_associations}",
                TRANSIENT,
                SERVICE_PROVIDER_PRESENTATION,
                LOCAL_LIMIT_EXCEEDED,
            )
        free = self.free_mb()
        if free < cfg.min_free_disk_mb:
            return Refusal(
                f"free disk {free:.0f} MB is under min_free_disk_mb {cfg.min_free_disk_mb}",
                TRANSIENT,
                SERVICE_PROVIDER_PRESENTATION,
                TEMPORARY_CONGESTION,
            )
        return None

    def _address_allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)
