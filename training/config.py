"""Training configuration (configs/training/*.yaml), validated with pydantic.

Unknown keys are errors that name the key. A checkpoint stores the config that built it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spinescreen.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """One dataset: generated phantoms or a folder on disk."""

    kind: Literal["phantoms", "verse", "ctspine1k", "folder", "synthetic"]
    root: Path | None = Field(None, description="Dataset folder (not for phantoms).")
    first_seed: int = Field(1_000_000, ge=0, description="Phantoms: first seed.")
    count: int = Field(16, ge=1, description="Phantoms: how many seeds.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Phantoms: PhantomParams knobs."
    )


class PreprocessingConfig(_Strict):
    spacing_mm: tuple[float, float, float]
    window_hu: tuple[float, float]
    patch_size: tuple[int, int, int]
    # Array order the network sees (cases are RAS; models/preprocessing.py reorients).
    orientation: Literal["RAS", "LPS"] = "RAS"


class ArchitectureConfig(_Strict):
    network: Literal["unet", "resnet"]
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    num_res_units: int = 0
    norm: Literal["batch", "instance"] = "batch"
    block_inplanes: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    layers: list[int] = Field(default_factory=lambda: [1, 1, 1, 1])
    # resnet: stride of the first convolution. 2 puts the first block at 2.5 mm for a 1.25 mm
    # crop (a body is still 10 voxels tall) at a tenth of the cost of 1 (CPU, 8 x 48^3: 0.28 vs
    # 2.8 s a step)
    stem_stride: int = Field(2, ge=1, le=2)

    def as_card(self) -> dict[str, Any]:
        if self.network == "unet":
            return {
                "network": "unet",
                "channels": self.channels,
                "num_res_units": self.num_res_units,
                "norm": self.norm,
            }
        return {
            "network": "resnet",
            "block_inplanes": self.block_inplanes,
            "layers": self.layers,
            "stem_stride": self.stem_stride,
        }


class OptimConfig(_Strict):
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(2, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    pool_size: int = Field(8, ge=1, description="Cases held in memory at once.")
    refresh_every: int = Field(50, ge=1, description="Steps between replacing one pooled case.")
    checkpoint_every: int = Field(100, ge=1)
    validate_every: int = Field(200, ge=1)
    amp: bool = Field(True, description="Mixed precision on CUDA (ignored on CPU).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(1, ge=0, description="CPU threads for torch; 0 = all cores.")
    num_workers: int = Field(0, ge=0)
    drawn_masks: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Grader: share of training masks drawn as a segmentation network draws "
        "them (training/samplers.py: drawn_like_a_network); 0 = the exact masks.",
    )


class TrainingConfig(_Strict):
    """A whole training run: model, data, preprocessing, architecture and optimisation."""

    model: Literal["segmenter", "outline", "grader"]
    name: str
    version: str = "0.1.0"
    seed: int = 0
    output_dir: Path
    train: list[SourceConfig]
    validation: list[SourceConfig] = Field(default_factory=list)
    preprocessing: PreprocessingConfig
    architecture: ArchitectureConfig
    optim: OptimConfig = OptimConfig()

    def network_architecture(self) -> dict[str, Any]:
        """The card's ``architecture``: the network, and for a UNet which outputs it has."""
        architecture = self.architecture.as_card()
        if self.architecture.network == "unet":
            architecture["outputs"] = "outline" if self.model == "outline" else "segmenter"
        return architecture


def load_training_config(path: Path) -> TrainingConfig:
    """Read and validate a training YAML; ConfigError names the bad key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read training config {path}: {exc}") from exc
    return parse_training_config(data, str(path))


def parse_training_config(data: Any, origin: str = "training config") -> TrainingConfig:
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {origin}: {_problems(exc)}") from exc


class EvaluationConfig(_Strict):
    """An evaluation run (configs/training/evaluation.yaml): weights, data and output."""

    weights_dir: Path | None = Field(
        None, description="segmenter/ and grader/ cards; null = shipped"
    )
    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    threads: int = Field(0, ge=0)
    mirror: bool = Field(
        False, description="levels also from the left-right mirror (models.mirror)"
    )
    data: list[SourceConfig]
    output_dir: Path


def load_evaluation_config(path: Path) -> EvaluationConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read evaluation config {path}: {exc}") from exc
    try:
        return EvaluationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid evaluation config {path}: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            problems.append(f"key '{key}': {error['msg']}")
    return "; ".join(problems)
