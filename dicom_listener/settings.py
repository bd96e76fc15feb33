"""Configuration sections owned by the listener: the DICOM SCP and the job store."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ListenerSettings(BaseModel):
    """The Storage SCP a PACS forwards studies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str = Field(
        "SPINESCREEN", min_length=1, max_length=16, pattern=r"^[ -~]*[!-~][ -~]*$"
    )
    host: str = Field("0.0.0.0", description="Address to bind; 127.0.0.1 for loopback only.")
    port: int = Field(11112, ge=1, le=65535)
    quiet_period_s: float = Field(
        20.0, gt=0, description="A study is complete after this many seconds without instances."
    )


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
