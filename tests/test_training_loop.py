"""One training step per model on tiny synthetic spines; checkpoints, resume, config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage

from spinescreen.errors import ConfigError
from training.config import load_training_config, parse_training_config
from training.loop import config_of_checkpoint, load_checkpoint, train


def tiny_config(model: str, out: Path, steps: int = 1) -> dict[str, Any]:
    segmenter = model in ("segmenter", "outline")
    return {
        "model": model,
        "name": f"tiny-{model}",
        "output_dir": str(out),
        "train": [{"kind": "synthetic", "count": 2}],
        "validation": [{"kind": "synthetic", "count": 1, "first_seed": 500}],
        "preprocessing": {
            "spacing_mm": [4.0] * 3 if segmenter else [2.0] * 3,
            "window_hu": [-200.0, 1000.0],
            "patch_size": [16, 16, 16],
        },
        "architecture": (
            {"network": "unet", "channels": [4, 8, 16]}
            if segmenter
            else {"network": "resnet", "block_inplanes": [4, 8, 8, 8]}
        ),
        "optim": {
            "steps": steps,
            "batch_size": 2,
            "pool_size": 1,
            "checkpoint_every": 1,
            "validate_every": 1,
            "threads": 1,
        },
    }


@pytest.mark.parametrize("model", ["segmenter", "outline", "grader"])
def test_one_training_step_writes_a_checkpoint_with_its_config(model: str, tmp_path: Path) -> None:
    config = parse_training_config(tiny_config(model, tmp_path / model))
    checkpoint = train(config)
    state = load_checkpoint(checkpoint)
    assert state["step"] == 1
    assert config_of_checkpoint(state) == config
    loss = state["history"]["losses"][0]
    assert 0.0 < loss < 20.0, f"first {model} loss {loss} is not a plausible finite loss"
    assert state["history"]["val_steps"] == [1]
    assert (tmp_path / model / "training_curves.png").stat().st_size > 1000


def test_resume_continues_from_the_stored_step(tmp_path: Path) -> None:
    first = parse_training_config(tiny_config("grader", tmp_path / "run", steps=1))
    checkpoint = train(first)
    before = load_checkpoint(checkpoint)["model"]
    longer = parse_training_config(tiny_config("grader", tmp_path / "run", steps=2))
    state = load_checkpoint(train(longer, resume=checkpoint))
    assert state["step"] == 2
    assert len(state["history"]["losses"]) == 2
    changed = [not torch.equal(before[k], state["model"][k]) for k in before]
    assert any(changed), "resumed training did not update the weights"


@pytest.fixture
def rates(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The learning rate in effect at each training step, as the optimiser had it."""
    import training.loop

    seen: list[float] = []
    step = training.loop._step

    def recording(config: Any, model: Any, optimizer: Any, *args: Any) -> float:
        seen.append(optimizer.param_groups[0]["lr"])
        return step(config, model, optimizer, *args)

    monkeypatch.setattr(training.loop, "_step", recording)
    return seen


def test_a_resumed_run_keeps_the_schedule_of_an_uninterrupted_one(
    tmp_path: Path, rates: list[float]
) -> None:
    from training.loop import _warmup_cosine

    config = parse_training_config(tiny_config("grader", tmp_path / "whole", steps=6))
    train(config)
    whole = rates[:]
    factor = _warmup_cosine(6)  # step k runs at the rate times factor(k - 1)
    assert whole == pytest.approx([config.optim.learning_rate * factor(k) for k in range(6)])
    rates.clear()
    checkpoint = train(parse_training_config(tiny_config("grader", tmp_path / "run", steps=3)))
    train(parse_training_config(tiny_config("grader", tmp_path / "run", steps=6)), checkpoint)
    # Steps 4-6 run on the 6-step schedule at the step reached, as in the uninterrupted run
    # (steps 1-3 ran on the 3-step schedule the first configuration asked for).
    assert len(set(whole[3:])) == 3  # cosine: the rate moves
    assert rates[3:] == pytest.approx(whole[3:], rel=1e-12)


def test_a_resumed_fine_tune_follows_its_own_learning_rate(
    tmp_path: Path, rates: list[float]
) -> None:
    """Resuming with a lower rate and more steps continues on the new rate's schedule from
    its first step, not on the checkpoint's (the checkpoint keeps its step and weights)."""
    checkpoint = train(parse_training_config(tiny_config("grader", tmp_path / "run", steps=2)))
    rates.clear()
    data = tiny_config("grader", tmp_path / "run")
    data["optim"].update(steps=4, learning_rate=1e-5)
    state = load_checkpoint(train(parse_training_config(data), resume=checkpoint))
    assert state["step"] == 4
    assert state["scheduler"]["base_lrs"] == [1e-5]
    assert len(rates) == 2 and all(0 < rate <= 1e-5 for rate in rates), rates


def test_resuming_with_another_array_order_or_spacing_is_refused(tmp_path: Path) -> None:
    checkpoint = train(parse_training_config(tiny_config("grader", tmp_path / "run")))
    data = tiny_config("grader", tmp_path / "run", steps=2)
    data["preprocessing"].update(orientation="LPS", spacing_mm=[3.0] * 3)
    with pytest.raises(ConfigError) as error:
        train(parse_training_config(data), resume=checkpoint)
    message = str(error.value)
    assert "preprocessing.orientation 'LPS' (checkpoint: 'RAS')" in message
    assert "preprocessing.spacing_mm (3.0, 3.0, 3.0) (checkpoint: (2.0, 2.0, 2.0))" in message
    assert load_checkpoint(checkpoint)["step"] == 1  # the checkpoint is untouched


def test_unknown_training_key_is_an_error_naming_it(tmp_path: Path) -> None:
    data = tiny_config("segmenter", tmp_path)
    data["optim"]["learning_rat"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.learning_rat'"):
        parse_training_config(data)


@pytest.mark.parametrize(
    "name",
    [
        "segmenter",
        "segmenter_finetune",
        "segmenter_gpu",
        "outline",
        "outline_finetune",
        "outline_arch",
        "outline_gpu",
        "grader",
        "grader_gpu",
    ],
)
def test_shipped_training_configs_are_valid(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "configs" / "training" / f"{name}.yaml"
    config = load_training_config(path)
    assert config.model == name.split("_")[0]
    seeds = [s.first_seed for s in config.train if s.kind == "phantoms"]
    assert min(seeds) >= 1_000_000, f"training seeds {seeds} overlap evaluation seeds"


def test_level_and_foreground_terms_score_right_and_wrong_predictions() -> None:
    from training.losses import foreground_dice, level_cross_entropy

    target = torch.zeros((1, 1, 4, 4, 4), dtype=torch.long)
    target[0, 0, :2] = 3
    perfect = torch.full((1, 5, 4, 4, 4), -20.0)
    perfect[:, 0] = 20.0
    perfect[0, 0, :2], perfect[0, 3, :2] = -20.0, 20.0
    assert float(level_cross_entropy(perfect, target[:, 0])) < 1e-3
    wrong_level = perfect.clone()
    wrong_level[0, 3, :2], wrong_level[0, 2, :2] = -20.0, 20.0
    assert float(level_cross_entropy(wrong_level, target[:, 0])) > 10.0
    assert float(level_cross_entropy(perfect, torch.zeros_like(target[:, 0]))) == 0.0
    empty = torch.zeros((1, 5, 4, 4, 4))
    empty[:, 0] = 20.0  # predicts background everywhere
    assert float(foreground_dice(perfect, target)) < 1e-3
    assert float(foreground_dice(empty, target)) > 0.9


def test_separation_weights_mark_the_gap_between_two_vertebrae_and_their_facing_faces() -> None:
    from training.losses import separation_weights

    target = torch.zeros((1, 6, 6, 12), dtype=torch.long)
    target[0, 1:5, 1:5, 1:5] = 3  # lower vertebra, z 1-4
    target[0, 1:5, 1:5, 6:10] = 4  # upper vertebra, z 6-9; the disc is z = 5
    weights = separation_weights(target, radius=1, weight=5.0)
    assert torch.all(weights[0, 1:5, 1:5, 5] == 6.0)  # the disc
    assert torch.all(weights[0, :, :, :5] == 1.0) and torch.all(weights[0, :, :, 6:] == 1.0)
    wider = separation_weights(target, radius=2, weight=5.0)  # now the facing end plates too
    assert torch.all(wider[0, 1:5, 1:5, 4:7] == 6.0)
    assert torch.all(wider[0, :, :, :3] == 1.0) and torch.all(wider[0, :, :, 8:] == 1.0)
    alone = torch.zeros_like(target)
    alone[0, 1:5, 1:5, 1:5] = 3  # one vertebra has no neighbour: nothing to separate
    assert torch.all(separation_weights(alone, radius=1) == 1.0)


def test_box_maximum_equals_max_pooling() -> None:
    from training.losses import _box_max

    volume = torch.rand((2, 1, 9, 10, 11))
    expected = torch.nn.functional.max_pool3d(volume, 5, stride=1, padding=2)
    assert torch.equal(_box_max(volume, 2), expected)


def test_grader_stem_stride_new_configs_two_older_cards_one() -> None:
    from models.networks import build_network
    from training.config import ArchitectureConfig

    card = ArchitectureConfig(network="resnet").as_card()
    assert card["stem_stride"] == 2
    assert build_network(card).conv1.stride == (2, 2, 2)
    older = {k: v for k, v in card.items() if k != "stem_stride"}  # exported before the key
    assert build_network(older).conv1.stride == (1, 1, 1)


def test_outline_loss_prefers_the_right_outline_and_split() -> None:
    from training.losses import outline_loss

    vertebra = torch.zeros((1, 1, 6, 6, 6), dtype=torch.long)
    vertebra[0, 0, :, :, :2] = 20
    vertebra[0, 0, :, :, 4:] = 21  # a disc (background) between two vertebrae
    subregion = (vertebra > 0).long()
    subregion[0, 0, :, 3:] *= 2  # posterior elements behind
    right = torch.nn.functional.one_hot(subregion[:, 0], 3).permute(0, 4, 1, 2, 3) * 8.0
    disc_closed = right.clone()
    disc_closed[0, :, :, :, 2:4] = right[0, :, :, :, :1]  # the disc called vertebra
    swapped = right[:, [0, 2, 1]]  # body and posterior elements exchanged
    best = float(outline_loss(right, vertebra, subregion))
    assert best < 0.05
    assert float(outline_loss(disc_closed, vertebra, subregion)) > best + 0.5
    assert float(outline_loss(swapped, vertebra, subregion)) > best + 5.0


def test_a_new_run_starts_from_exported_weights_and_refuses_a_card_that_does_not_fit(
    tmp_path: Path,
) -> None:
    from training.export import export_checkpoint

    first = train(parse_training_config(tiny_config("grader", tmp_path / "first")))
    export_checkpoint(first, tmp_path / "exported")
    exported = torch.load(tmp_path / "exported" / "model.pt", weights_only=True)
    data = tiny_config("grader", tmp_path / "second")
    data["optim"]["learning_rate"] = 1e-12  # one step that leaves the parameters where it began
    data["train"][0]["params"] = {"levels": 5}  # the default, said on the card
    second = train(parse_training_config(data), init=tmp_path / "exported")
    state = load_checkpoint(second)
    assert state["step"] == 1 and len(state["history"]["losses"]) == 1  # a new run
    for name, value in state["model"].items():
        if "running" not in name and "num_batches" not in name:  # batch-norm statistics move
            torch.testing.assert_close(value, exported[name], atol=1e-6, rtol=0, msg=name)
    # the fine-tune's card names the model it started from and that model's own training
    first_card = export_checkpoint(first, tmp_path / "exported-again")
    card = export_checkpoint(second, tmp_path / "fine-tuned")
    assert card.training_data.startswith(
        f"fine-tuned from tiny-grader {first_card.version} (trained on: synthetic (2 cases); "
        "1 steps, seed 0.), then: synthetic (2 cases; levels 5); 1 steps"
    ), card.training_data

    other = tiny_config("segmenter", tmp_path / "third")
    with pytest.raises(ConfigError, match="model 'segmenter' \\(card: 'grader'\\)"):
        train(parse_training_config(other), init=tmp_path / "exported")
    with pytest.raises(ConfigError, match="give one of them"):
        train(parse_training_config(data), init=tmp_path / "exported", resume=first)
    (tmp_path / "exported" / "model.pt").write_bytes(b"damaged")
    with pytest.raises(ConfigError, match="fails its checksum"):
        train(parse_training_config(data), init=tmp_path / "exported")


def test_grader_training_masks_are_drawn_like_a_network_draws_them() -> None:
    """A biconcave body (both end plates sunk 4 voxels in the middle, over most of their
    width) drawn as the outline network draws it: the dips filled when the fill reaches that
    deep, never a voxel of the body lost by the fill itself, edges moved by at most one
    voxel, and no voxel added beyond the end plates' rims."""
    from training.samplers import drawn_like_a_network

    body = np.zeros((40, 40, 40), dtype=bool)
    body[10:30, 10:30, 8:32] = True
    body[13:27, 13:27, 8:12] = False  # lower end plate sunk in the middle
    body[13:27, 13:27, 28:32] = False  # and the upper one
    depression = np.zeros_like(body)
    depression[13:27, 13:27, 8:12] = depression[13:27, 13:27, 28:32] = True
    inner = ndimage.binary_erosion(body)  # one voxel in from the true body
    outer = ndimage.binary_dilation(body | depression)  # one voxel out from the filled body
    filled = []
    for seed in range(40):
        drawn = drawn_like_a_network(body, np.random.default_rng(seed)) > 0.5
        assert drawn[inner].all()
        assert not (drawn & ~outer).any()
        filled.append(drawn[depression].mean())
    assert max(filled) > 0.9 and min(filled) < 0.5  # some masks filled, others not


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_a_grader_trains_on_drawn_masks_as_configured(
    share: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.samplers

    drawn = []
    original = training.samplers.drawn_like_a_network

    def counted(mask: Any, rng: Any) -> Any:
        drawn.append(1)
        return original(mask, rng)

    monkeypatch.setattr(training.samplers, "drawn_like_a_network", counted)
    data = tiny_config("grader", tmp_path)
    data["optim"]["drawn_masks"] = share
    assert train(parse_training_config(data)).is_file()
    assert bool(drawn) == (share > 0)  # every mask drawn at 1.0, none at 0.0


def test_the_share_of_drawn_masks_is_checked(tmp_path: Path) -> None:
    data = tiny_config("grader", tmp_path)
    data["optim"]["drawn_masks"] = 1.5
    with pytest.raises(ConfigError, match=r"optim\.drawn_masks"):
        parse_training_config(data)
