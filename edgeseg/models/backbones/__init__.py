"""Backbones with torchvision-compatible state-dict names, plus loading of ImageNet weights from a file."""

from __future__ import annotations

import logging
import os

from torch import nn

from edgeseg.errors import CheckpointError
from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.backbones.xception39 import Xception39
from edgeseg.models.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load ImageNet weights (e.g. saved from ``torchvision.models.resnet18``) from a local file.

    Keys the backbone does not have (the classifier ``fc.*``) are ignored; a key the backbone needs but the
    file lacks, or a shape mismatch, is an error.
    """
    state = load_checkpoint(path)["state_dict"]
    own = backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{path} lacks {len(missing)} backbone tensors, e.g. {missing[0]}")
    for k in own:
        if k in state and state[k].shape != own[k].shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(own[k].shape)}")
    backbone.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
    ignored = sorted(set(state) - set(own))
    log.info("loaded %d backbone tensors from %s (ignored %d: %s)", len(own), path, len(ignored),
             ", ".join(ignored[:4]))


__all__ = ["ResNet", "Xception39", "load_backbone_weights"]
