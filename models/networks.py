"""The MONAI networks behind the models, built from the ``architecture`` entry of a card.

Segmenter: a 3D MONAI UNet whose output channels are the vertebra classes (background + the
VerSe labels in :data:`VERTEBRA_LABELS`) followed by three sub-region classes (background,
vertebral body, posterior elements). Outline: the same UNet with only the three sub-region
classes, run at a finer spacing around the spine the segmenter found (the second stage of
models/segmenter.py). Grader: a small 3D MONAI ResNet (ResNet10-like, basic
blocks) whose eight outputs are four Genant grade logits and four morphology logits.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets.resnet import ResNet
from monai.networks.nets.unet import UNet

from spinescreen.errors import ModelError

# Output classes of the segmenter's vertebra head: index -> VerSe label (0 = background).
VERTEBRA_LABELS: tuple[int, ...] = (0, *range(1, 27), 28)
SUBREGION_CLASSES = 3  # background, vertebral body, posterior elements
UNET_OUTPUTS = {"segmenter": len(VERTEBRA_LABELS) + SUBREGION_CLASSES, "outline": SUBREGION_CLASSES}
GRADES = 4  # Genant 0-3
MORPHOLOGIES: tuple[str, ...] = ("normal", "wedge", "biconcave", "crush")

LEVEL_NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{i + 7: f"T{i}" for i in range(1, 13)},
    **{i + 19: f"L{i}" for i in range(1, 7)},
    26: "S",
    28: "T13",
}


def segmenter_architecture(
    channels: tuple[int, ...] = (16, 32, 64, 128), num_res_units: int = 0
) -> dict[str, Any]:
    return {
        "network": "unet",
        "channels": list(channels),
        "num_res_units": num_res_units,
        "norm": "batch",
    }


def build_network(architecture: dict[str, Any]) -> torch.nn.Module:
    """The torch module a card's ``architecture`` describes."""
    kind = architecture.get("network")
    if kind == "unet":
        channels = tuple(int(c) for c in architecture["channels"])
        outputs = str(architecture.get("outputs", "segmenter"))  # cards before the outline model
        if outputs not in UNET_OUTPUTS:
            raise ModelError(f"unknown UNet outputs {outputs!r} in the model card")
        return UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=UNET_OUTPUTS[outputs],
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=int(architecture.get("num_res_units", 0)),
            norm=str(architecture.get("norm", "batch")),
        )
    if kind == "resnet":
        return ResNet(
            block="basic",
            layers=[int(n) for n in architecture["layers"]],
            block_inplanes=[int(n) for n in architecture["block_inplanes"]],
            spatial_dims=3,
            n_input_channels=2,
            num_classes=GRADES + len(MORPHOLOGIES),
            conv1_t_size=3,
            # Training configs default to a stride-2 stem (training/config.py: a tenth of the
            # cost of a full-resolution one); a card without the key was made with stride 1.
            conv1_t_stride=int(architecture.get("stem_stride", 1)),
            no_max_pool=True,
        )
    raise ModelError(f"unknown network {kind!r} in the model card; expected 'unet' or 'resnet'")


def split_segmenter_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertebra logits, sub-region logits) from the segmenter's output channels."""
    n = len(VERTEBRA_LABELS)
    return logits[:, :n], logits[:, n : n + SUBREGION_CLASSES]
