"""The training loop shared by both models: seeds, checkpoints, resume, AMP and DDP.

A checkpoint holds the network, optimiser and scheduler state, the step, the loss history and
the configuration that built it, so ``--resume`` continues exactly and ``export`` rebuilds the
network without the YAML. On CUDA the same entry point runs under ``torchrun`` (DDP, NCCL);
on CPU it runs in one process.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from models.card import ModelCard, read_card, verify_file
from models.networks import build_network
from spinescreen.errors import ConfigError, ModelError
from training.config import TrainingConfig, parse_training_config
from training.losses import grader_loss, outline_loss, segmentation_loss
from training.samplers import CaseStream, GraderBatches, SegmentationBatches, open_source

log = logging.getLogger(__name__)
Progress = Callable[[int, int, float], None]
LOG_EVERY = 10


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)


def start_runtime(config: TrainingConfig) -> Runtime:
    """Device, and the DDP process group when launched by torchrun on CUDA."""
    want = config.optim.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("optim.device is 'cuda' but torch sees no CUDA device; use cpu or auto")
    cuda = want != "cpu" and torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cuda and world > 1:
        torch.distributed.init_process_group("nccl")
        rank = torch.distributed.get_rank()
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return Runtime(torch.device("cuda", torch.cuda.current_device()), rank, world)
    if not cuda:
        threads = config.optim.threads or (os.cpu_count() or 1)
        torch.set_num_threads(threads)
        return Runtime(torch.device("cpu"))
    return Runtime(torch.device("cuda"))


def _warmup_cosine(steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over 5 % of the steps, then cosine to 2 %."""
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
    return state


def config_of_checkpoint(state: dict[str, Any]) -> TrainingConfig:
    return parse_training_config(state["config"], "configuration stored in the checkpoint")


def _what_the_network_sees(config: TrainingConfig) -> dict[str, Any]:
    """What a run may not change under given weights: the network it builds and the inputs
    it sees (another model, architecture, spacing, HU window or array order would train the
    weights on inputs they were not made for: an orientation left at its default RAS under
    LPS-trained weights reads every patch mirrored)."""
    spec = config.preprocessing
    return {
        "model": config.model,
        "architecture": config.network_architecture(),
        "preprocessing.spacing_mm": tuple(spec.spacing_mm),
        "preprocessing.window_hu": tuple(spec.window_hu),
        "preprocessing.orientation": spec.orientation,
    }


def _refuse_differences(
    config: TrainingConfig, given: dict[str, Any], what: str, refusal: str, hint: str
) -> None:
    """ConfigError naming every value of ``_what_the_network_sees`` that differs from
    ``given`` (the checkpoint's or the card's, called ``what``)."""
    new = _what_the_network_sees(config)
    changed = [f"{k} {new[k]!r} ({what}: {old!r})" for k, old in given.items() if new[k] != old]
    if changed:
        raise ConfigError(f"{refusal} with this configuration: " + "; ".join(changed) + hint)


def _check_resumable(config: TrainingConfig, state: dict[str, Any], path: Path) -> None:
    """A resumed run may change its data, steps, rate and patch size, not what the network
    computes or sees (``_what_the_network_sees``)."""
    stored = _what_the_network_sees(config_of_checkpoint(state))
    if "orientation" not in state["config"].get("preprocessing", {}):
        # checkpoints from before the key: phantoms were LPS, dataset cases RAS
        del stored["preprocessing.orientation"]
        log.warning(
            "%s records no preprocessing.orientation; resuming with %s: make sure the "
            "checkpoint's network saw that array order (phantom-trained checkpoints of that "
            "age saw LPS)",
            path,
            config.preprocessing.orientation,
        )
    _refuse_differences(
        config,
        stored,
        "checkpoint",
        f"cannot resume {path}",
        ". Set them as the checkpoint has them, or start a new run without --resume",
    )


def initial_weights(
    config: TrainingConfig, folder: Path
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """The network weights of an exported model (a card folder, such as the shipped
    ``models/weights/segmenter``) for a new run to start from: fine-tuning on a dataset
    (VerSe, CTSpine1K) or on more phantoms; and its card. The card must describe the network
    this configuration builds and the inputs it sees, as for a resume; its torch weights are
    checked against the card's SHA-256."""
    try:
        card = read_card(folder)
    except ModelError as exc:
        raise ConfigError(f"--init {folder}: {exc}") from exc
    spec = card.preprocessing
    _refuse_differences(
        config,
        {
            "model": card.kind,
            "architecture": card.architecture,
            "preprocessing.spacing_mm": tuple(spec.spacing_mm),
            "preprocessing.window_hu": tuple(spec.window_hu),
            "preprocessing.orientation": spec.orientation,
        },
        "card",
        f"cannot start from {card.name} {card.version} ({folder})",
        ". Set them as the card has them",
    )
    if card.torch_weights_file is None or card.torch_sha256 is None:
        raise ConfigError(f"--init {folder}: the card names no torch weights (model.pt)")
    path = folder / card.torch_weights_file
    try:
        verify_file(path, card.torch_sha256)
    except ModelError as exc:
        raise ConfigError(f"--init {folder}: {exc}") from exc
    log.info("starting from %s %s (%s)", card.name, card.version, folder)
    weights: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return weights, card


def train(
    config: TrainingConfig,
    resume: Path | None = None,
    progress: Progress | None = None,
    init: Path | None = None,
) -> Path:
    """Train to ``config.optim.steps``; returns the final checkpoint path. ``resume``
    continues a run from its checkpoint; ``init`` starts a new one (step 0, a fresh optimiser
    and schedule) from the weights of an exported model."""
    if resume is not None and init is not None:
        raise ConfigError(
            "--resume continues a run and --init starts a new one from exported weights: "
            "give one of them"
        )
    runtime = start_runtime(config)
    seed_everything(config.seed + runtime.rank)
    network = build_network(config.network_architecture())
    # the lineage a fine-tune's card carries: the model it started from and that one's training
    started_from: str | None = None
    if init is not None:
        weights, card = initial_weights(config, init)
        network.load_state_dict(weights)
        started_from = f"{card.name} {card.version} (trained on: {card.training_data})"
    network = network.to(runtime.device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.optim.learning_rate, weight_decay=config.optim.weight_decay
    )
    amp = config.optim.amp and runtime.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    history, start = History(), 0
    rate = config.optim.learning_rate
    if resume is not None:
        state = load_checkpoint(resume)
        _check_resumable(config, state, resume)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history, start = History(**state["history"]), int(state["step"])
        started_from = state.get("started_from")
        stored = optimizer.param_groups[0].get("initial_lr", rate)
        if stored != rate:
            log.info("learning rate %s (the checkpoint's was %s)", rate, stored)
        log.info("resumed from %s at step %d", resume, start)
    # The schedule is the configuration's, at the step reached: a fine-tune resumed with more
    # steps or another rate follows its own from its first step (the optimiser's stored state
    # would bring the checkpoint's rate back), and a plain resume continues exactly.
    for group in optimizer.param_groups:
        group["initial_lr"] = rate
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(config.optim.steps), last_epoch=start - 1
    )
    model: torch.nn.Module = network
    if runtime.world > 1:
        model = DistributedDataParallel(network, device_ids=[runtime.device.index])
    batches = _batches(config, config.train, runtime, config.seed)
    validation = (
        _batches(config, config.validation, Runtime(runtime.device), 12345)
        if (config.validation and runtime.main)
        else None
    )
    out = config.output_dir
    for step in range(start + 1, config.optim.steps + 1):
        model.train()
        loss = _step(
            config, model, optimizer, scaler, batches.batch(config.optim.batch_size), runtime, amp
        )
        scheduler.step()
        history.steps.append(step)
        history.losses.append(loss)
        if step % config.optim.refresh_every == 0:
            batches.refresh()
        if validation is not None and step % config.optim.validate_every == 0:
            history.val_steps.append(step)
            history.val_losses.append(_validate(config, network, validation, runtime))
            log.info("step %d: validation loss %.4f", step, history.val_losses[-1])
        if progress is not None and runtime.main:
            progress(step, config.optim.steps, loss)
        if runtime.main and step % LOG_EVERY == 0:
            recent = float(np.mean(history.losses[-LOG_EVERY:]))
            log.info("step %d/%d: mean loss %.4f", step, config.optim.steps, recent)
        if runtime.main and (
            step % config.optim.checkpoint_every == 0 or step == config.optim.steps
        ):
            _save(
                out / "last.pt",
                config,
                network,
                optimizer,
                scheduler,
                scaler,
                step,
                history,
                started_from,
            )
    if runtime.main:
        from training.plots import plot_training_curves

        plot_training_curves(history, out / "training_curves.png", config.name)
    return out / "last.pt"


def _batches(
    config: TrainingConfig, sources: Any, runtime: Runtime, seed: int
) -> SegmentationBatches | GraderBatches:
    from models.preprocessing import PreprocessingSpec

    spec = PreprocessingSpec(**config.preprocessing.model_dump())
    stream = CaseStream([open_source(s) for s in sources], seed, runtime.rank, runtime.world)
    pool = min(config.optim.pool_size, len(stream.items))
    if config.model in ("segmenter", "outline"):
        return SegmentationBatches(stream, spec, pool, seed + runtime.rank)
    return GraderBatches(stream, spec, pool, seed + runtime.rank, config.optim.drawn_masks)


def _loss(
    config: TrainingConfig,
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
) -> torch.Tensor:
    batch = {k: v.to(device) for k, v in batch.items()}
    if config.model == "segmenter":
        return segmentation_loss(model(batch["image"]), batch["vertebra"], batch["subregion"])
    if config.model == "outline":
        return outline_loss(model(batch["image"]), batch["vertebra"], batch["subregion"])
    return grader_loss(model(batch["patch"]), batch["grade"], batch["morphology"])


def _step(
    config: TrainingConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: dict[str, torch.Tensor],
    runtime: Runtime,
    amp: bool,
) -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(runtime.device.type, enabled=amp):
        loss = _loss(config, model, batch, runtime.device)
    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _validate(
    config: TrainingConfig,
    network: torch.nn.Module,
    batches: SegmentationBatches | GraderBatches,
    runtime: Runtime,
) -> float:
    network.eval()
    with torch.no_grad():
        values = [
            float(_loss(config, network, batches.batch(config.optim.batch_size), runtime.device))
            for _ in range(4)
        ]
    return float(np.mean(values))


def _save(
    path: Path,
    config: TrainingConfig,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    step: int,
    history: History,
    started_from: str | None = None,
) -> None:
    save_checkpoint(
        path,
        {
            "config": config.model_dump(mode="json"),
            "model": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "history": history.__dict__,
            "started_from": started_from,
        },
    )
