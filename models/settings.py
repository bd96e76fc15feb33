"""Configuration section owned by the models: inference backend and device."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelSettings(BaseModel):
    """Which inference backend runs the shipped networks, and where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when the backend sees a GPU, else CPU."
    )
    weights_dir: Path | None = Field(
        None, description="Folder with model cards and weights; default: those shipped in models/."
    )
    threads: int = Field(0, ge=0, description="CPU threads for inference; 0 = all cores.")
    mirror: bool = Field(
        False,
        description=(
            "Name the levels from the first stage's output averaged over the image and its "
            "left-right mirror (one more pass of the 3 mm network, about 1 s and 0.35 GB; "
            "off: on the phantoms it helped one network and hurt another, README)."
        ),
    )
