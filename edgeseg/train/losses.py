"""Segmentation losses. Every loss takes logits ``(N, C, H, W)`` and labels ``(N, H, W)`` with 255 = ignore."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.meta import IGNORE_INDEX


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy with an ignore index and optional class weights."""

    def __init__(self, class_weights: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.ignore_index = ignore_index

    def forward(self, logits, labels):
        return F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=self.ignore_index)


class OhemCrossEntropy(nn.Module):
    """Online hard example mining (Shrivastava et al., CVPR 2016; as in BiSeNet's training): average the
    cross-entropy over pixels whose true-class probability is below ``threshold``, and at least over the
    ``min_kept_ratio`` hardest valid pixels."""

    def __init__(self, threshold: float = 0.7, min_kept_ratio: float = 1 / 16,
                 class_weights: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.loss_threshold = -torch.log(torch.tensor(threshold)).item()
        self.min_kept_ratio = min_kept_ratio
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.ignore_index = ignore_index

    def forward(self, logits, labels):
        loss = F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=self.ignore_index,
                               reduction="none").flatten()
        valid = (labels.flatten() != self.ignore_index)
        loss = loss[valid]
        if loss.numel() == 0:
            return logits.sum() * 0.0
        min_kept = max(1, int(loss.numel() * self.min_kept_ratio))
        hard = loss[loss > self.loss_threshold]
        if hard.numel() < min_kept:
            hard = torch.topk(loss, min_kept).values
        return hard.mean()


class LabelRelaxation(nn.Module):
    """Boundary label relaxation (Zhu et al., CVPR 2019): maximise the probability of the *union* of the
    classes within a ``window``×``window`` neighbourhood, ``-log Σ_{c∈N(p)} P(c|p)``. Away from boundaries the
    neighbourhood holds one class and this is the cross-entropy."""

    def __init__(self, num_classes: int, window: int = 3, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.num_classes, self.window, self.ignore_index = num_classes, window, ignore_index

    def forward(self, logits, labels):
        valid = labels != self.ignore_index
        onehot = F.one_hot(torch.where(valid, labels, 0), self.num_classes).permute(0, 3, 1, 2).float()
        onehot = onehot * valid[:, None]
        neighbours = F.max_pool2d(onehot, self.window, 1, self.window // 2)
        log_p = F.log_softmax(logits.float(), dim=1)
        log_union = torch.logsumexp(log_p.masked_fill(neighbours == 0, float("-inf")), dim=1)
        has_label = neighbours.sum(1) > 0
        if not has_label.any():
            return logits.sum() * 0.0
        return -log_union[has_label].mean()


def pixelwise_distillation(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher ‖ student) over classes per pixel with temperature, scaled by T² (Hinton et al., 2015;
    the pixel-wise term of Liu et al., CVPR 2019)."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1).mean() * t * t


def _affinity(features: torch.Tensor, grid: int) -> torch.Tensor:
    pooled = F.adaptive_avg_pool2d(features, (min(grid, features.shape[-2]), min(grid, features.shape[-1])))
    nodes = F.normalize(pooled.flatten(2), dim=1)  # (N, C, nodes), unit vectors per node
    return nodes.transpose(1, 2) @ nodes


def pairwise_distillation(student_features, teacher_features, grid: int = 16) -> torch.Tensor:
    """Pair-wise similarity distillation (Liu et al., CVPR 2019): match the cosine-similarity matrices of
    student and teacher between the nodes of a ``grid``×``grid`` pooling of the feature maps."""
    return F.mse_loss(_affinity(student_features, grid), _affinity(teacher_features.detach(), grid))


class SegmentationLoss(nn.Module):
    """Main loss on the main logits plus ``aux_weight`` × the same loss on each auxiliary output."""

    def __init__(self, criterion: nn.Module, aux_weight: float = 1.0) -> None:
        super().__init__()
        self.criterion, self.aux_weight = criterion, aux_weight

    def forward(self, outputs, labels):
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        main = self.criterion(outputs[0], labels)
        aux = [self.criterion(o, labels) for o in outputs[1:]]
        total = main + self.aux_weight * sum(aux) if aux else main
        return total, {"loss_main": main.detach(), **{f"loss_aux{i}": a.detach() for i, a in enumerate(aux)}}


def build_criterion(name: str, num_classes: int, class_weights=None) -> nn.Module:
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"{weights.numel()} class weights for {num_classes} classes")
    if name == "ce":
        return CrossEntropy(weights)
    if name == "ohem":
        return OhemCrossEntropy(class_weights=weights)
    if name == "relax":
        return LabelRelaxation(num_classes)
    raise ValueError(f"unknown loss {name!r}; choose ce, ohem or relax")
