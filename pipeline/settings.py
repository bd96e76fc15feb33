"""Configuration sections owned by the pipeline: analysis and the service (delivery lives with
the listener and is re-exported here)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dicom_listener.settings import DeliverySettings

__all__ = ["AnalysisSettings", "DeliverySettings", "ServeSettings"]


class AnalysisSettings(BaseModel):
    """Series routing and fracture grading."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routing_rules: Path | None = Field(
        None, description="YAML routing rules; default: the rules shipped in configs/."
    )
    fls_referral_grade: int = Field(
        2, ge=1, le=3, description="Genant grade from which the report recommends FLS referral."
    )


class ServeSettings(BaseModel):
    """The all-in-one service: listener, analysis workers and delivery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(1, ge=1, le=64)
    health_port: int = Field(8080, ge=0, le=65535, description="0 disables the health endpoint.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
