"""What training adds to one dataset and one criterion: validation on other data (``val_data``), more training
data (``extra_train_data``), weak labels (``weak``, :mod:`edgeseg.data.weak`) and the loss terms that need the
image and the validity map as well as the labels (the gated CRF, :mod:`edgeseg.train.gated_crf`).

The trainer calls :func:`open_sources`, :func:`weak_labels` and :func:`main_criterion` when it sets up, and an
:class:`ExtraTerms` at every step with ``(outputs, images, labels, valid, iteration)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data import open_dataset
from edgeseg.data.base import SegmentationSource
from edgeseg.data.concat import ConcatSource, check_same_classes
from edgeseg.data.weak import WeakLabels, parse_mode
from edgeseg.meta import IGNORE_INDEX
from edgeseg.train.config import TrainConfig
from edgeseg.train.gated_crf import GatedCRFLoss


def open_sources(config: TrainConfig) -> tuple[SegmentationSource, SegmentationSource]:
    """The training source (``data`` then each of ``extra_train_data``) and the validation source (``val_data``
    or ``data``, its ``val_split``); every one must have the training data's classes."""
    train = open_dataset(config.data, config.train_split)
    extra = [open_dataset(spec, config.train_split) for spec in config.extra_train_data]
    if extra:
        train = ConcatSource([train, *extra])
    val = open_dataset(config.val_data or config.data, config.val_split)
    if config.val_data is not None:
        check_same_classes(train, val, "val_data")
    return train, val


def weak_labels(config: TrainConfig, source: SegmentationSource) -> WeakLabels | None:
    """The weak annotations of every training sample (``None`` with ``weak=none``)."""
    mode = parse_mode(config.weak)
    if mode.kind == "none":
        return None
    return WeakLabels(mode, source.classes, config.weak_seed, ignore_index=source.ignore_index)


class AllowedSetLoss(nn.Module):
    """For labels that are sets of allowed classes (boxes, image or tile tags): ``-log Σ_{c ∈ A(u)} P(c | u)``,
    the cross-entropy when A(u) is one class. Averaged over the pixels whose set says something (not empty: padded
    or ignored; not every class). ``allowed`` is bool (N, C, H, W)."""

    def forward(self, logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        informative = allowed.any(dim=1) & ~allowed.all(dim=1)
        if not informative.any():
            return logits.sum() * 0.0
        log_p = F.log_softmax(logits.float(), dim=1)
        log_union = torch.logsumexp(log_p.masked_fill(~allowed, float("-inf")), dim=1)
        return -log_union[informative].mean()


class Partial(nn.Module):
    """``criterion`` on sparse labels: 0 (with a gradient of 0) for a batch without one labelled pixel, where
    the mean over no pixels would be NaN. A random crop of an image with a few clicks often holds none."""

    def __init__(self, criterion: nn.Module, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.criterion, self.ignore_index = criterion, ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not (labels != self.ignore_index).any():
            return logits.sum() * 0.0
        return self.criterion(logits, labels)


def main_criterion(config: TrainConfig, criterion: nn.Module) -> nn.Module:
    """The criterion for ``config.weak``: ``criterion`` (``loss``'s) for dense labels, the same made safe for
    batches without labels for sparse ones, :class:`AllowedSetLoss` for allowed-class sets."""
    mode = parse_mode(config.weak)
    if mode.kind == "none":
        return criterion
    return AllowedSetLoss() if mode.sets else Partial(criterion)


class ExtraTerms:
    """The loss terms beyond the criterion, weighted: ``gcrf_weight`` × the gated CRF loss on the main output,
    from iteration ``ceil(gcrf_start × iters)`` on (the paper's code skips the first 0.5 % of steps)."""

    def __init__(self, config: TrainConfig) -> None:
        self.weight = config.gcrf_weight
        self.gcrf = GatedCRFLoss(config.gcrf_radius, config.gcrf_stride, config.gcrf_sigma_xy,
                                 config.gcrf_sigma_rgb, config.gcrf_gate) if config.gcrf_weight > 0 else None
        self.start = math.ceil(config.gcrf_start * config.iters)

    @property
    def needs_valid(self) -> bool:
        """Whether the data loader must give the validity map."""
        return self.gcrf is not None

    def __call__(self, outputs, images: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None,
                 iteration: int) -> tuple[torch.Tensor | float, dict]:
        """``(weighted sum of the active terms, {name: unweighted term})`` for one batch."""
        if self.gcrf is None or iteration < self.start:
            return 0.0, {}
        main = outputs if isinstance(outputs, torch.Tensor) else outputs[0]
        term = self.gcrf(main, images, valid)
        return self.weight * term, {"loss_gcrf": term.detach()}
