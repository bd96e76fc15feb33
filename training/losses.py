"""Losses: Dice + cross-entropy for the segmenter heads, cross-entropy for the grader heads."""

from __future__ import annotations

import torch
from monai.losses.dice import DiceCELoss

from models.networks import GRADES, MORPHOLOGIES, split_segmenter_logits
from training.transforms import IGNORE_INDEX

_DICE_CE = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
# Fractures are rare; grade classes weighted so a missed fracture costs more than a false alarm.
GRADE_WEIGHTS = (1.0, 2.0, 2.0, 2.0)


def segmentation_loss(
    logits: torch.Tensor, vertebra: torch.Tensor, subregion: torch.Tensor
) -> torch.Tensor:
    """DiceCE on the vertebra classes + CE on the sub-regions (ignoring unknown voxels)."""
    vert_logits, sub_logits = split_segmenter_logits(logits.float())
    loss: torch.Tensor = _DICE_CE(vert_logits, vertebra)
    target = subregion[:, 0].long()
    if bool((target != IGNORE_INDEX).any()):
        ce = torch.nn.functional.cross_entropy(sub_logits, target, ignore_index=IGNORE_INDEX)
        loss = loss + 0.5 * ce
    return loss


def grader_loss(
    logits: torch.Tensor, grade: torch.Tensor, morphology: torch.Tensor
) -> torch.Tensor:
    """Weighted CE on the Genant grade + CE on the morphology."""
    logits = logits.float()
    weights = torch.tensor(GRADE_WEIGHTS, device=logits.device)
    grade_loss = torch.nn.functional.cross_entropy(logits[:, :GRADES], grade, weight=weights)
    morph_logits = logits[:, GRADES : GRADES + len(MORPHOLOGIES)]
    return grade_loss + 0.5 * torch.nn.functional.cross_entropy(morph_logits, morphology)
