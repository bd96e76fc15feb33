"""Configuration sections owned by the pipeline: analysis, result delivery and the service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AnalysisSettings(BaseModel):
    """Series routing and fracture grading."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routing_rules: Path | None = Field(
        None, description="YAML routing rules; default: the rules shipped in configs/."
    )
    fls_referral_grade: int = Field(
        2, ge=1, le=3, description="Genant grade from which the report recommends FLS referral."
    )


class DeliverySettings(BaseModel):
    """Where results (SR, SEG, key image) go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outbox_dir: Path = Field(
        Path("outbox"), description="Folder destination; relative to data_dir."
    )
    send_negative_reports: bool = True


class ServeSettings(BaseModel):
    """The all-in-one service: listener, analysis workers and delivery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(1, ge=1, le=64)
    health_port: int = Field(8080, ge=0, le=65535, description="0 disables the health endpoint.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
