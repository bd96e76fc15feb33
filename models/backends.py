"""Inference backends: a callable from a torch tensor batch to a torch tensor of logits.

``onnxruntime`` (default) runs the exported ONNX file on the CPU provider, or the CUDA provider
when it is available and the device setting allows; ``torch`` rebuilds the MONAI network from
the card and loads its state dict. Both take and return ``torch.Tensor`` so MONAI's
``sliding_window_inference`` can drive either.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.card import ModelCard, verify_file
from models.networks import build_network
from models.settings import ModelSettings
from spinescreen.errors import ModelError

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Runs one network on a batch: (N, C, *spatial) float32 -> logits."""

    name: str
    device: torch.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def cpu_threads(settings: ModelSettings) -> int:
    return settings.threads if settings.threads > 0 else max(1, os.cpu_count() or 1)


class OnnxBackend:
    """An onnxruntime session wrapped to take and return torch tensors."""

    name = "onnxruntime"

    def __init__(self, path: Path, settings: ModelSettings) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads(settings)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # return activation memory between calls
        providers = _onnx_providers(settings, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.device = torch.device("cpu")
        log.info("onnxruntime session for %s on %s", path.name, self.session.get_providers()[0])
        if cuda:
            log.info("onnxruntime uses CUDA; tensors are exchanged through host memory")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (out,) = self.session.run(None, {self.input_name: array})[:1]
        return torch.from_numpy(np.asarray(out)).to(batch.device)


def _onnx_providers(settings: ModelSettings, available: list[str]) -> list[str]:
    if settings.device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelError(
            "models.device is 'cuda' but onnxruntime has no CUDAExecutionProvider "
            f"(available: {available}); install onnxruntime-gpu or set models.device to cpu"
        )
    if settings.device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class TorchBackend:
    """The MONAI network rebuilt from the card, with its state dict, in eval mode."""

    name = "torch"

    def __init__(self, card: ModelCard, folder: Path, settings: ModelSettings) -> None:
        if card.torch_weights_file is None or card.torch_sha256 is None:
            raise ModelError(
                f"model card {card.name} {card.version} names no torch weights; "
                "use models.backend: onnxruntime or re-export with torch weights"
            )
        path = folder / card.torch_weights_file
        verify_file(path, card.torch_sha256)
        self.device = _torch_device(settings)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(settings))
        network = build_network(card.architecture)
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        self.network = network.to(self.device).eval()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.network(batch.to(self.device))  # type: ignore[no-any-return]


def _torch_device(settings: ModelSettings) -> torch.device:
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ModelError("models.device is 'cuda' but torch sees no CUDA device; set it to cpu")
    if settings.device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def open_backend(card: ModelCard, folder: Path, settings: ModelSettings) -> Backend:
    """The backend ``settings.backend`` names, after verifying the weights' checksum."""
    if settings.backend == "torch":
        return TorchBackend(card, folder, settings)
    path = folder / card.weights_file
    verify_file(path, card.sha256)
    return OnnxBackend(path, settings)
