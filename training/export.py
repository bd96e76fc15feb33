"""Export a checkpoint to ONNX + torch state dict + model card, with a parity check.

Parity: the ONNX model run by onnxruntime must reproduce the torch logits within
``PARITY_ATOL`` (absolute) + ``PARITY_RTOL`` (relative) on random inputs, for the UNets
(segmenter, outline) at two spatial sizes (their spatial axes are dynamic). The version written
to the card carries the first 8 hex digits of the ONNX file's SHA-256, so new weights mean a
new version and a new device UID.
"""

from __future__ import annotations

import datetime
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.card import ModelCard, sha256_of
from models.networks import LEVEL_NAMES, MORPHOLOGIES, VERTEBRA_LABELS, build_network
from models.preprocessing import PreprocessingSpec
from spinescreen.errors import ModelError
from training.config import TrainingConfig
from training.loop import config_of_checkpoint, load_checkpoint

log = logging.getLogger(__name__)
PARITY_ATOL = 1e-3
PARITY_RTOL = 1e-3
MAX_ONNX_BYTES = 25 * 1024 * 1024
OPSET = 17


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    max_abs_logit: float
    shapes: tuple[tuple[int, ...], ...]

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_ATOL + PARITY_RTOL * self.max_abs_logit


def export_checkpoint(
    checkpoint: Path, out_dir: Path, metrics: dict[str, float] | None = None
) -> ModelCard:
    """Write ``model.onnx``, ``model.pt``, ``card.json`` and ``card.md`` into ``out_dir``."""
    state = load_checkpoint(checkpoint)
    config = config_of_checkpoint(state)
    network = build_network(config.network_architecture())
    network.load_state_dict(state["model"])
    network.eval()
    spec = PreprocessingSpec(**config.preprocessing.model_dump())
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, torch_path = out_dir / "model.onnx", out_dir / "model.pt"
    export_onnx(network, config, spec, onnx_path)
    parity = check_parity(network, onnx_path, _parity_inputs(config, spec))
    if not parity.ok:
        raise ModelError(
            f"ONNX parity failed for {onnx_path}: max |torch - onnxruntime| = "
            f"{parity.max_abs_diff:.2e} > {PARITY_ATOL} + {PARITY_RTOL} x "
            f"{parity.max_abs_logit:.2f}; check the opset and unsupported operators"
        )
    torch.save(network.state_dict(), torch_path)
    card = _card(
        config,
        spec,
        onnx_path,
        torch_path,
        int(state["step"]),
        metrics or {},
        state.get("started_from"),
    )
    card.save(out_dir)
    log.info(
        "exported %s %s to %s (parity max abs diff %.2e)",
        card.name,
        card.version,
        out_dir,
        parity.max_abs_diff,
    )
    return card


def export_onnx(
    network: torch.nn.Module, config: TrainingConfig, spec: PreprocessingSpec, path: Path
) -> None:
    volumetric = config.model != "grader"  # a UNet on whole volumes: any spatial size
    channels = 1 if volumetric else 2
    example = torch.zeros((1, channels, *spec.patch_size))
    axes: dict[int, str] = {0: "batch"}
    if volumetric:
        axes.update({2: "x", 3: "y", 4: "z"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about its own future
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={
                "input": axes,
                "logits": axes if volumetric else {0: "batch"},
            },
        )
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelError(
            f"ONNX file {path} is {size / 2**20:.1f} MiB, over the 25 MiB limit; "
            "use fewer channels in the architecture"
        )


def _parity_inputs(config: TrainingConfig, spec: PreprocessingSpec) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    if config.model == "grader":
        return [torch.rand((2, 2, *spec.patch_size), generator=generator)]
    # Another size than the training patch, still a multiple of the UNet's total stride.
    stride = 2 ** (len(config.architecture.channels) - 1)
    bigger = tuple(n + stride for n in spec.patch_size)
    return [
        torch.rand((1, 1, *spec.patch_size), generator=generator),
        torch.rand((1, 1, *bigger), generator=generator),
    ]


def check_parity(network: torch.nn.Module, onnx_path: Path, inputs: list[torch.Tensor]) -> Parity:
    """Largest absolute difference between torch and onnxruntime logits over ``inputs``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            expected = network(x).numpy()
            (actual,) = session.run(None, {"input": x.numpy()})[:1]
            worst = max(worst, float(np.max(np.abs(expected - np.asarray(actual)))))
            scale = max(scale, float(np.max(np.abs(expected))))
    return Parity(worst, scale, tuple(tuple(x.shape) for x in inputs))


def _card(
    config: TrainingConfig,
    spec: PreprocessingSpec,
    onnx_path: Path,
    torch_path: Path,
    step: int,
    metrics: dict[str, float],
    started_from: str | None = None,
) -> ModelCard:
    sha = sha256_of(onnx_path)
    if config.model == "segmenter":
        labels = {str(label): LEVEL_NAMES[label] for label in VERTEBRA_LABELS if label}
    elif config.model == "outline":
        labels = {"0": "background", "1": "vertebral body", "2": "posterior elements"}
    else:
        labels = {f"grade_{g}": f"Genant grade {g}" for g in range(4)}
        labels.update({f"morphology_{m}": m for m in MORPHOLOGIES})
    sources = ", ".join(
        f"{s.kind} ({s.count} cases{_drawn_with(s.params)})"
        if s.kind in ("phantoms", "synthetic")
        else f"{s.kind} ({s.root})"
        for s in config.train
    )
    return ModelCard(
        name=config.name,
        kind=config.model,
        version=f"{config.version}+{sha[:8]}",
        weights_file=onnx_path.name,
        sha256=sha,
        preprocessing=spec,
        architecture=config.network_architecture(),
        labels=labels,
        torch_weights_file=torch_path.name,
        torch_sha256=sha256_of(torch_path),
        training_data=(f"fine-tuned from {started_from}, then: " if started_from else "")
        + f"{sources}; {step} steps, seed {config.seed}.",
        limitations=(
            "Synthetic phantoms only approximate real CT (anatomy, noise, pathology, implants "
            "and devices are simplified); performance on patient scans is unknown."
            if any(s.kind in ("phantoms", "synthetic") for s in config.train)
            else "Trained on public datasets; their populations and scanners limit generalisation."
        ),
        metrics=metrics,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _drawn_with(params: dict[str, Any]) -> str:
    """The knobs a phantom source was drawn with, for the card: '; mode realistic, ...'."""
    return "; " + ", ".join(f"{k} {v}" for k, v in params.items()) if params else ""
