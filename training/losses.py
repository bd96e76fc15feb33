"""Losses: cross-entropy + foreground Dice for the segmenter heads, cross-entropy for the grader."""

from __future__ import annotations

import torch

from models.networks import GRADES, MORPHOLOGIES, split_segmenter_logits
from training.transforms import IGNORE_INDEX

# Fractures are rare; grade classes weighted so a missed fracture costs more than a false alarm.
GRADE_WEIGHTS = (1.0, 2.0, 2.0, 2.0)
# Voxels with two different vertebrae within SEPARATION_RADIUS voxels (the disc between two
# bodies, facet joints, the facing end plates) weigh 1 + SEPARATION_WEIGHT in the vertebra
# head's cross-entropies: the weight map of the U-Net paper (Ronneberger et al. 2015) for
# touching objects, as a neighbourhood test.
SEPARATION_RADIUS = 2
SEPARATION_WEIGHT = 5.0


def segmentation_loss(
    logits: torch.Tensor, vertebra: torch.Tensor, subregion: torch.Tensor
) -> torch.Tensor:
    """CE + foreground Dice on the vertebra head, CE among the levels on vertebra voxels only,
    and CE on the sub-regions (ignoring unknown voxels). The vertebra head's CEs weigh the
    voxels between two vertebrae more (``separation_weights``).

    The level term is what teaches the levels: in a CE over all voxels the background is
    nine voxels in ten and the level signal starves (measured: memorising one phantom, level
    accuracy 6 % after 150 steps with DiceCE over all classes, 56 % with this term).

    The separation weights are what put the discs and the level boundaries in place: at
    3 mm a disc is one or two voxels, too few to matter in an unweighted loss, and a network
    trained without them (2500 steps) called discs vertebra with P > 0.99 and moved level
    boundaries into the bodies."""
    vert_logits, sub_logits = split_segmenter_logits(logits.float())
    target = vertebra[:, 0].long()
    weights = separation_weights(target)
    ce = torch.nn.functional.cross_entropy(vert_logits, target, reduction="none")
    loss = (ce * weights).mean()
    loss = loss + foreground_dice(vert_logits, vertebra)
    loss = loss + level_cross_entropy(vert_logits, target, weights)
    target = subregion[:, 0].long()
    if bool((target != IGNORE_INDEX).any()):
        ce = torch.nn.functional.cross_entropy(sub_logits, target, ignore_index=IGNORE_INDEX)
        loss = loss + 0.5 * ce
    return loss


def outline_loss(
    logits: torch.Tensor, vertebra: torch.Tensor, subregion: torch.Tensor
) -> torch.Tensor:
    """Loss of the outline model (3 classes: background, body, posterior elements).

    Vertebra against background from the vertebra labels (known in every dataset): binary CE
    with the separation weights (the discs and joints between two vertebrae must stay open,
    or the levels cannot be told apart) + soft Dice; body against posterior elements by CE
    where the dataset has sub-region masks."""
    logits = logits.float()
    truth = (vertebra[:, 0] > 0).float()
    weights = separation_weights(vertebra[:, 0].long())
    log_all = torch.logsumexp(logits, dim=1)
    log_background = logits[:, 0] - log_all
    log_vertebra = torch.logsumexp(logits[:, 1:], dim=1) - log_all
    ce = -(truth * log_vertebra + (1.0 - truth) * log_background)
    loss = (ce * weights).sum() / weights.sum()
    loss = loss + foreground_dice(logits, vertebra)
    target = subregion[:, 0].long()
    if bool((target != IGNORE_INDEX).any()):
        loss = loss + torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    return loss


def level_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """CE among the vertebra classes (background excluded) over the vertebra voxels, each
    voxel weighted by ``weights`` (B, X, Y, Z) when given (normalised to their mean)."""
    inside = target > 0
    if not bool(inside.any()):
        return logits.sum() * 0.0
    levels = logits[:, 1:].permute(0, 2, 3, 4, 1)[inside]
    ce = torch.nn.functional.cross_entropy(levels, target[inside] - 1, reduction="none")
    if weights is None:
        return ce.mean()
    w = weights[inside]
    return (ce * w).sum() / w.sum()


def separation_weights(
    target: torch.Tensor, radius: int = SEPARATION_RADIUS, weight: float = SEPARATION_WEIGHT
) -> torch.Tensor:
    """Per-voxel weights (B, X, Y, Z) for class targets (B, X, Y, Z; 0 = background):
    1 + ``weight`` where the (2 radius + 1)^3 neighbourhood holds two different vertebrae,
    1 elsewhere."""
    labels = target.float()[:, None]
    absent = float(labels.max()) + 1.0  # background counts as no vertebra for the lowest
    highest = _box_max(labels, radius)
    lowest = -_box_max(-labels.masked_fill(labels == 0, absent), radius)
    mixed = (highest > 0) & (lowest < absent) & (highest != lowest)
    return (1.0 + weight * mixed.float())[:, 0]


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


def _box_max(volume: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over a (2 radius + 1)^3 box of a (B, C, X, Y, Z) tensor, one axis at a time (a
    box is separable): as fast as ``max_pool3d`` with stride 1 is slow on a CPU."""
    for axis in (2, 3, 4):
        pad = [0, 0] * (4 - axis) + [radius, radius]  # F.pad lists the last axis first
        padded = torch.nn.functional.pad(volume, pad, value=float("-inf"))
        volume = padded.unfold(axis, 2 * radius + 1, 1).amax(-1)
    return volume
