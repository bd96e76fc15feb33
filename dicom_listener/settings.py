"""Configuration sections owned by the listener: the DICOM SCP, the job store and delivery."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AE_TITLE_PATTERN = r"^[ -~]*[!-~][ -~]*$"


class TlsSettings(BaseModel):
    """TLS for DICOM associations; enabled when cert_file and key_file are both set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path | None = Field(None, description="Our PEM certificate.")
    key_file: Path | None = Field(None, description="Our PEM private key.")
    ca_file: Path | None = Field(None, description="PEM CA bundle that signs client certificates.")
    require_client_cert: bool = Field(False, description="Refuse TLS peers without a certificate.")

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None and self.key_file is not None


class ListenerSettings(BaseModel):
    """The Storage SCP a PACS forwards studies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str = Field("SPINESCREEN", min_length=1, max_length=16, pattern=AE_TITLE_PATTERN)
    host: str = Field("0.0.0.0", description="Address to bind; 127.0.0.1 for loopback only.")
    port: int = Field(11112, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    quiet_period_s: float = Field(
        20.0, gt=0, description="A study is complete after this many seconds without instances."
    )
    quiet_period_by_ae: dict[str, float] = Field(
        default_factory=dict, description="Quiet period per calling AE title (overrides default)."
    )
    allowed_calling_ae_titles: list[str] = Field(
        default_factory=list, description="Calling AE titles allowed to associate; empty = all."
    )
    allowed_networks: list[str] = Field(
        default_factory=list, description="Client IP networks (CIDR) allowed; empty = all."
    )
    require_called_ae_title: bool = Field(
        True, description="Refuse associations whose called AE title is not ae_title."
    )
    max_associations: int = Field(10, ge=1, description="Concurrent associations accepted.")
    acse_timeout_s: float = Field(30.0, gt=0)
    dimse_timeout_s: float = Field(60.0, gt=0)
    network_timeout_s: float = Field(60.0, gt=0)
    tls: TlsSettings = TlsSettings()
    min_free_disk_mb: int = Field(
        1024, ge=0, description="Refuse associations and answer 0xA700 below this free space."
    )
    store_non_image: bool = Field(
        True, description="Keep SRs, dose reports, presentation states; false = ack and drop."
    )
    completion_check_s: float = Field(
        1.0, gt=0, description="How often due studies are checked for completion."
    )

    @field_validator("quiet_period_by_ae")
    @classmethod
    def _positive_periods(cls, value: dict[str, float]) -> dict[str, float]:
        for ae, period in value.items():
            if period <= 0:
                raise ValueError(f"quiet period for AE {ae!r} must be > 0 s, got {period}")
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a CIDR network such as 10.0.0.0/8") from exc
        return value

    def quiet_period_for(self, calling_ae: str) -> float:
        """The quiet period that applies to studies sent by ``calling_ae``."""
        return self.quiet_period_by_ae.get(calling_ae.strip(), self.quiet_period_s)


class StoreSettings(BaseModel):
    """Where received instances, the index and the job queue live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spool_dir: Path = Field(Path("spool"), description="Received files; relative to data_dir.")
    database: Path = Field(
        Path("spinescreen.db"), description="SQLite index and job store; relative to data_dir."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL that replaces the SQLite file (multi-node PostgreSQL)."
    )
    job_max_attempts: int = Field(5, ge=1, description="Attempts before a job is dead-lettered.")
    backoff_base_s: float = Field(30.0, gt=0, description="Retry delay after the first failure.")
    backoff_max_s: float = Field(3600.0, gt=0, description="Upper bound of the retry delay.")
    lease_s: float = Field(300.0, gt=0, description="A running job without heartbeat expires.")


FOLDER_DESTINATION = "folder"  # the name of the embedded folder destination in the outbox
ResultKind = Literal["sr", "seg", "key_image"]
ALL_RESULT_KINDS: tuple[ResultKind, ...] = ("sr", "seg", "key_image")


class DestinationTlsSettings(BaseModel):
    """TLS towards one destination; the CA verifies the PACS, cert/key identify us."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    ca_file: Path | None = Field(None, description="PEM CA bundle that verifies the PACS.")
    cert_file: Path | None = Field(None, description="Our PEM client certificate (optional).")
    key_file: Path | None = Field(None, description="Our PEM client key (with cert_file).")


class DestinationSettings(BaseModel):
    """A C-STORE SCP (a PACS, a router) that receives the result objects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    ae_title: str = Field(min_length=1, max_length=16, pattern=AE_TITLE_PATTERN)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str | None = Field(
        None, max_length=16, pattern=AE_TITLE_PATTERN, description="None = listener.ae_title."
    )
    tls: DestinationTlsSettings = DestinationTlsSettings()


class DeliverySettings(BaseModel):
    """Which result objects are produced and where the outbox delivers them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outbox_dir: Path = Field(
        Path("outbox"), description="Folder destination; relative to data_dir."
    )
    folder: bool = Field(True, description="Deliver to <outbox_dir>/<StudyInstanceUID>/ too.")
    destinations: list[DestinationSettings] = Field(
        default_factory=list, description="C-STORE destinations."
    )
    send: list[ResultKind] = Field(
        default_factory=lambda: list(ALL_RESULT_KINDS),
        description="Result objects produced and sent.",
    )
    send_negative_reports: bool = True
    retry_base_s: float = Field(30.0, gt=0, description="Retry delay after the first failure.")
    retry_max_s: float = Field(1800.0, gt=0, description="Upper bound of the retry delay.")
    give_up_after_s: float = Field(
        21600.0, gt=0, description="An undelivered object is dead-lettered after this long."
    )
    poll_interval_s: float = Field(1.0, gt=0, description="How often due deliveries are looked up.")
    association_timeout_s: float = Field(
        30.0, gt=0, description="ACSE, DIMSE and network timeout of a delivery association."
    )

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, value: list[DestinationSettings]) -> list[DestinationSettings]:
        names = [d.name for d in value]
        for name in names:
            if name == FOLDER_DESTINATION:
                raise ValueError(f"destination name {name!r} is reserved for the folder outbox")
            if names.count(name) > 1:
                raise ValueError(f"destination name {name!r} is used twice; names must be unique")
        return value

    @field_validator("send")
    @classmethod
    def _unique_kinds(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"send lists an object kind twice: {value}")
        return value
