"""PNG plots of training curves and evaluation results (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_training_curves(history: Any, path: Path, title: str) -> None:
    """Training loss (and its running mean) and validation loss against the step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history.steps, history.losses, alpha=0.3, label="training loss")
    if len(history.losses) >= 20:
        window = max(10, len(history.losses) // 50)
        smooth = np.convolve(history.losses, np.ones(window) / window, mode="valid")
        ax.plot(history.steps[window - 1 :], smooth, label=f"running mean ({window})")
    if history.val_steps:
        ax.plot(history.val_steps, history.val_losses, "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bars(values: dict[str, float], path: Path, title: str, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(max(5, len(values) * 0.4), 4))
    ax.bar(list(values), list(values.values()))
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc(curves: dict[str, tuple[Sequence[float], Sequence[float], float]], path: Path) -> None:
    """ROC curves: name -> (false positive rates, true positive rates, AUC)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.5)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: Sequence[Sequence[int]], path: Path, title: str) -> None:
    data = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(data, cmap="Blues")
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("true grade")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
