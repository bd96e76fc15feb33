"""Loading the shipped (or configured) models: card, checksum, backend."""

from __future__ import annotations

from pathlib import Path

from models.backends import Backend, open_backend
from models.card import CARD_JSON, ModelCard, read_card
from models.grader import Grader
from models.segmenter import Outline, Segmenter
from models.settings import ModelSettings
from spinescreen.errors import ModelError

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"


def model_folder(settings: ModelSettings, kind: str) -> Path:
    """Folder holding the card and weights of ``kind`` (segmenter, outline or grader)."""
    root = settings.weights_dir if settings.weights_dir is not None else SHIPPED_WEIGHTS
    return root / kind


def load_segmenter(settings: ModelSettings) -> Segmenter:
    """The segmenter from the card in ``<weights_dir>/segmenter``, with its second stage from
    ``<weights_dir>/outline`` when that folder has a card (checksums verified)."""
    card, backend = _open(settings, "segmenter")
    outline = None
    if (model_folder(settings, "outline") / CARD_JSON).exists():
        outline = Outline(*_open(settings, "outline"))
    return Segmenter(card, backend, outline, mirror=settings.mirror)


def load_grader(settings: ModelSettings) -> Grader:
    """The grader from the card in ``<weights_dir>/grader`` (checksum verified)."""
    card, backend = _open(settings, "grader")
    return Grader(card, backend)


def _open(settings: ModelSettings, kind: str) -> tuple[ModelCard, Backend]:
    folder = model_folder(settings, kind)
    card = read_card(folder)
    if card.kind != kind:
        raise ModelError(
            f"model card {folder / 'card.json'} describes a {card.kind}, not a {kind}; "
            f"put the {kind}'s card and weights in {folder}"
        )
    return card, open_backend(card, folder, settings)
