"""Losses: Dice + cross-entropy for the segmenter heads, cross-entropy for the grader heads."""

from __future__ import annotations

import torch
from monai.losses.dice import DiceLoss

from models.networks import GRADES, MORPHOLOGIES, split_segmenter_logits
from training.transforms import IGNORE_INDEX

# Batch Dice per class, kept only for classes present in the batch: with 27 vertebra classes
# most are absent from any one patch, and a Dice term for an absent class only teaches the
# network to predict nothing (MONAI's per-class default scores an absent class as loss 1).
_DICE = DiceLoss(
    to_onehot_y=True, softmax=True, include_background=False, batch=True, reduction="none"
)
# Fractures are rare; grade classes weighted so a missed fracture costs more than a false alarm.
GRADE_WEIGHTS = (1.0, 2.0, 2.0, 2.0)


def segmentation_loss(
    logits: torch.Tensor, vertebra: torch.Tensor, subregion: torch.Tensor
) -> torch.Tensor:
    """DiceCE on the vertebra classes + CE on the sub-regions (ignoring unknown voxels)."""
    vert_logits, sub_logits = split_segmenter_logits(logits.float())
    loss = present_class_dice(vert_logits, vertebra) + foreground_dice(vert_logits, vertebra)
    loss = loss + torch.nn.functional.cross_entropy(vert_logits, vertebra[:, 0].long())
    target = subregion[:, 0].long()
    if bool((target != IGNORE_INDEX).any()):
        ce = torch.nn.functional.cross_entropy(sub_logits, target, ignore_index=IGNORE_INDEX)
        loss = loss + 0.5 * ce
    return loss


def present_class_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice loss over the foreground classes present in ``target`` (0 if none)."""
    per_class: torch.Tensor = _DICE(logits, target).flatten()  # foreground classes 1..C-1
    counts = torch.bincount(target.long().flatten(), minlength=logits.shape[1])[1:]
    present = counts > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    return per_class[present].mean()


def foreground_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss of "any vertebra" against background: an easy signal early in training."""
    foreground = 1.0 - torch.softmax(logits, dim=1)[:, 0]
    truth = (target[:, 0] > 0).float()
    overlap = (foreground * truth).sum()
    return 1.0 - (2.0 * overlap + 1.0) / (foreground.sum() + truth.sum() + 1.0)


def grader_loss(
    logits: torch.Tensor, grade: torch.Tensor, morphology: torch.Tensor
) -> torch.Tensor:
    """Weighted CE on the Genant grade + CE on the morphology."""
    logits = logits.float()
    weights = torch.tensor(GRADE_WEIGHTS, device=logits.device)
    grade_loss = torch.nn.functional.cross_entropy(logits[:, :GRADES], grade, weight=weights)
    morph_logits = logits[:, GRADES : GRADES + len(MORPHOLOGIES)]
    return grade_loss + 0.5 * torch.nn.functional.cross_entropy(morph_logits, morphology)
