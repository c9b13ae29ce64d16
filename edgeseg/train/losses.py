"""Segmentation losses. Every loss takes logits ``(N, C, H, W)`` and labels ``(N, H, W)`` with 255 = ignore."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError
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
    classes within a ``window``×``window`` neighbourhood N(p), ``-log Σ_{c∈N(p)} P(c|p)``. Away from boundaries
    the neighbourhood holds one class and this is the cross-entropy.

    The options of the official recipe (NVIDIA/semantic-segmentation, ``ImgWtLossSoftNLL`` and
    ``RelaxedBoundaryLossToTensor``), all off by default:

    * ``class_weights`` and ``image_weight_bound``: each pixel's term is weighted by
      ``(1/|N(p)|) Σ_{c∈N(p)} w_c``, the class weights averaged over its neighbourhood, where ``w_c`` is the given
      weight times, with a bound ``b > 0`` (``--wt_bound``), ``1 + b (1 - f_c)`` for the classes present in the
      image, ``f_c`` their share of the image's neighbourhood sets. With every weight 1 this is the plain loss.
    * ``strict_classes``: pixels of these classes keep their own class as target (``--strict_bdr_cls``): thin
      objects, where a 3×3 union would accept the background over the whole object.
    * ``off_after``: from this fraction of the training on (``--rlx_off_epoch``, 100 of 175 epochs in the
      official recipe) the window radius halves (3×3 becomes the plain cross-entropy) and pixels on a class
      boundary (4-neighbourhood, ignore counted as a class) weigh 2. The trainer reports its progress through
      :meth:`set_progress`.
    """

    def __init__(self, num_classes: int, window: int = 3, ignore_index: int = IGNORE_INDEX, *,
                 class_weights: torch.Tensor | None = None, image_weight_bound: float = 0.0,
                 strict_classes: tuple[int, ...] = (), off_after: float | None = None) -> None:
        super().__init__()
        self.num_classes, self.window, self.ignore_index = num_classes, window, ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.image_weight_bound = image_weight_bound
        strict = torch.zeros(num_classes, dtype=torch.bool)
        strict[list(strict_classes)] = True
        self.register_buffer("strict", strict, persistent=False)
        self.off_after = off_after
        self.relaxed = True

    def set_progress(self, iteration: int, total: int) -> None:
        """The trainer is at ``iteration`` (0-based, the step about to run) of ``total``: relaxation switches off
        at iteration ``round(off_after * total)``."""
        self.relaxed = self.off_after is None or iteration < round(self.off_after * total)

    def forward(self, logits, labels):
        valid = labels != self.ignore_index
        safe = torch.where(valid, labels, 0)
        onehot = F.one_hot(safe, self.num_classes).permute(0, 3, 1, 2).float()
        onehot = onehot * valid[:, None]
        radius = self.window // 2 if self.relaxed else self.window // 4
        neighbours = F.max_pool2d(onehot, 2 * radius + 1, 1, radius) if radius else onehot
        if self.strict.any():
            neighbours = torch.where((valid & self.strict[safe])[:, None], onehot, neighbours)
        log_p = F.log_softmax(logits.float(), dim=1)
        log_union = torch.logsumexp(log_p.masked_fill(neighbours == 0, float("-inf")), dim=1)
        count = neighbours.sum(1)
        has_label = count > 0
        if not has_label.any():
            return logits.sum() * 0.0
        loss = -log_union
        weights = self._weights(neighbours, valid, radius)
        if weights is not None:
            loss = loss * (neighbours * weights[:, :, None, None]).sum(1) / count.clamp(min=1)
        if not self.relaxed:
            loss = loss * (1 + _thick_boundary(torch.where(valid, labels, self.num_classes)).float())
        return loss[has_label].mean()

    def _weights(self, neighbours: torch.Tensor, valid: torch.Tensor, radius: int) -> torch.Tensor | None:
        """Per-image class weights (N, C), or None when every weight is 1."""
        if self.class_weights is None and not self.image_weight_bound:
            return None
        n = neighbours.shape[0]
        weights = (self.class_weights if self.class_weights is not None else neighbours.new_ones(self.num_classes)
                   ).expand(n, -1)
        if self.image_weight_bound:
            # the official histogram counts an "ignore" channel too: set where the window meets an ignored pixel or
            # the image border
            k = 2 * radius + 1
            ignored = F.max_pool2d(F.pad((~valid)[:, None].float(), (radius,) * 4, value=1.0), k, 1)
            share = neighbours.sum((2, 3)) / (neighbours.sum((1, 2, 3)) + ignored.sum((1, 2, 3)))[:, None]
            weights = weights * torch.where(share > 0, 1 + self.image_weight_bound * (1 - share), 1.0)
        return weights


def _thick_boundary(labels: torch.Tensor) -> torch.Tensor:
    """Pixels whose 4-neighbourhood holds another value (skimage's ``find_boundaries(mode='thick')``; the
    image border repeats the edge pixels)."""
    padded = F.pad(labels[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0]
    centre = padded[:, 1:-1, 1:-1]
    return ((padded[:, :-2, 1:-1] != centre) | (padded[:, 2:, 1:-1] != centre)
            | (padded[:, 1:-1, :-2] != centre) | (padded[:, 1:-1, 2:] != centre))


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

    def set_progress(self, iteration: int, total: int) -> None:
        """Tell a criterion that changes during training (label relaxation's switch-off) where training is."""
        if hasattr(self.criterion, "set_progress"):
            self.criterion.set_progress(iteration, total)

    def forward(self, outputs, labels):
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        main = self.criterion(outputs[0], labels)
        aux = [self.criterion(o, labels) for o in outputs[1:]]
        total = main + self.aux_weight * sum(aux) if aux else main
        return total, {"loss_main": main.detach(), **{f"loss_aux{i}": a.detach() for i, a in enumerate(aux)}}


def build_criterion(name: str, num_classes: int, class_weights=None, **relax) -> nn.Module:
    """The loss ``name`` (ce, ohem, relax); ``relax`` holds :class:`LabelRelaxation`'s options
    (``image_weight_bound``, ``strict_classes``, ``off_after``: see :func:`relax_options`)."""
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"{weights.numel()} class weights for {num_classes} classes")
    if relax and name != "relax":
        raise ValueError(f"{', '.join(relax)} apply to the relax loss, not {name}")
    if name == "ce":
        return CrossEntropy(weights)
    if name == "ohem":
        return OhemCrossEntropy(class_weights=weights)
    if name == "relax":
        return LabelRelaxation(num_classes, class_weights=weights, **relax)
    raise ValueError(f"unknown loss {name!r}; choose ce, ohem or relax")


def criterion_for(config, classes: list[str]) -> nn.Module:
    """The criterion a training config asks for (``loss``, ``class_weights``, the ``relax_*`` keys) on data with
    these ``classes``."""
    return build_criterion(config.loss, len(classes), config.class_weights, **relax_options(config, classes))


def relax_options(config, classes: list[str]) -> dict:
    """:class:`LabelRelaxation`'s options from a training config's ``relax_*`` keys (empty unless ``loss=relax``):
    strict classes given by name or index are checked against ``classes`` here, where the data is known."""
    if config.loss != "relax":
        return {}
    strict = []
    for item in config.relax_strict_classes or ():
        if isinstance(item, str) and not item.isdigit():
            if item not in classes:
                raise EdgesegError(f"relax_strict_classes: no class {item!r}; the classes are {', '.join(classes)}")
            strict.append(classes.index(item))
        elif not 0 <= int(item) < len(classes):
            raise EdgesegError(f"relax_strict_classes: class index {item} is outside 0-{len(classes) - 1}")
        else:
            strict.append(int(item))
    return {"image_weight_bound": config.relax_wt_bound, "strict_classes": tuple(strict),
            "off_after": config.relax_off}
