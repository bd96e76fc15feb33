"""Model cards: what a set of weights is, how to feed it, and the checksum that pins it.

A card lives beside its weights as ``card.json`` (read by the runtime) and ``card.md`` (read by
people). Loading verifies the SHA-256 of the weights file, so a changed or damaged file is
refused. The device UID (a DICOM UID under the 2.25 UUID root, derived from name, version and
checksum) changes whenever the weights change; the SR carries it as the algorithm identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from models.preprocessing import PreprocessingSpec
from spinescreen.errors import ModelError

ModelKind = Literal["segmenter", "outline", "grader"]
CARD_JSON = "card.json"
CARD_MARKDOWN = "card.md"
NOT_VALIDATED = (
    "Not validated on patients. Research use only; not a medical device. "
    "Trained on synthetic phantoms unless stated otherwise."
)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def device_uid(name: str, version: str, sha256: str) -> str:
    """A DICOM UID (2.25 root) derived deterministically from the model identity."""
    digest = hashlib.sha256(f"{name}|{version}|{sha256}".encode()).hexdigest()
    return "2.25." + str(int(digest[:32], 16))


@dataclass(frozen=True)
class ModelCard:
    """Identity, preprocessing and provenance of one trained network."""

    name: str
    kind: ModelKind
    version: str
    weights_file: str  # ONNX file, relative to the card's folder
    sha256: str  # of ``weights_file``
    preprocessing: PreprocessingSpec
    architecture: dict[str, Any]  # models.networks.build_network(**architecture)
    labels: dict[str, str]  # output meaning: VerSe label -> level, or class -> name
    torch_weights_file: str | None = None  # state dict for the torch backend
    torch_sha256: str | None = None
    training_data: str = ""
    limitations: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    intended_use: str = "Research: opportunistic vertebral compression fracture screening on CT."
    validation: str = NOT_VALIDATED
    created: str = ""

    @property
    def device_uid(self) -> str:
        return device_uid(self.name, self.version, self.sha256)

    @property
    def orientation(self) -> str:
        return self.preprocessing.orientation

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["device_uid"] = self.device_uid
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        fields = dict(data)
        fields.pop("device_uid", None)
        fields["preprocessing"] = PreprocessingSpec.from_json(fields["preprocessing"])
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ModelError(f"model card fields are invalid: {exc}") from exc

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=2, sort_keys=True)
        (folder / CARD_JSON).write_text(text + "\n", encoding="utf-8")
        (folder / CARD_MARKDOWN).write_text(render_markdown(self), encoding="utf-8")


def read_card(folder: Path) -> ModelCard:
    """The card in ``folder``; ModelError when it is missing or unreadable."""
    path = folder / CARD_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        config = folder.name if folder.name in ("segmenter", "outline", "grader") else "<model>"
        raise ModelError(
            f"no model card at {path}: train and export the model "
            f"(`spinescreen train configs/training/{config}.yaml`, then "
            f"`spinescreen export <checkpoint> --out {folder}`), or set models.weights_dir"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {path} cannot be read: {exc}") from exc
    return ModelCard.from_json(data)


def verify_file(path: Path, expected: str) -> None:
    """Refuse a weights file whose SHA-256 differs from the card's."""
    if not path.is_file():
        raise ModelError(
            f"weights file {path} is missing: train and export the model "
            "(`spinescreen train configs/training/segmenter.yaml`, then "
            "`spinescreen export <checkpoint> --out <folder>`)"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise ModelError(
            f"weights file {path} fails its checksum: expected sha256 {expected}, "
            f"actual {actual}; the file is damaged or was replaced, re-export it or restore it"
        )


def render_markdown(card: ModelCard) -> str:
    """The card for people: identity, preprocessing, labels, data, metrics, use."""
    spec = card.preprocessing
    lines = [
        f"# {card.name} {card.version}",
        "",
        f"**{card.validation}**",
        "",
        f"- Kind: {card.kind}",
        f"- Weights: `{card.weights_file}` (SHA-256 `{card.sha256}`)",
        f"- Device UID: `{card.device_uid}`",
        f"- Architecture: `{json.dumps(card.architecture, sort_keys=True)}`",
        f"- Created: {card.created}",
        "",
        "## Preprocessing (models/preprocessing.py, shared by training and inference)",
        "",
        f"- Orientation: {spec.orientation} (array axes i, j, k = R, A, S)",
        f"- Spacing: {spec.spacing_mm} mm",
        f"- Intensity window: {spec.window_hu[0]} to {spec.window_hu[1]} HU, scaled to 0-1",
        f"- Patch size: {spec.patch_size}",
        "",
        "## Labels",
        "",
        *[f"- {key}: {value}" for key, value in sorted(card.labels.items(), key=_label_order)],
        "",
        "## Training data and its limits",
        "",
        card.training_data or "(not stated)",
        "",
        card.limitations or "",
        "",
        "## Metrics",
        "",
        *[f"- {key}: {value:.4f}" for key, value in sorted(card.metrics.items())],
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
    ]
    return "\n".join(lines)


def _label_order(item: tuple[str, str]) -> tuple[int, int, str]:
    """Numeric labels in number order (a card read back from JSON has them as sorted text:
    "10" before "2"), then named ones."""
    key = item[0]
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
