"""Parameter and FLOP counts of the deploy graph (aux heads excluded)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeseg.models.base import SegmentationModel


def count_parameters(model: torch.nn.Module, *, deploy: bool = True) -> int:
    """Number of learnable parameters; with ``deploy`` the training-only ``aux_heads`` are left out."""
    params = model.deploy_parameters() if deploy and isinstance(model, SegmentationModel) else model.parameters()
    return sum(p.numel() for p in params)


def count_flops(model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1) -> int:
    """FLOPs of one eval forward at ``input_size`` (a multiply-add counts as 2; convs and matmuls only).

    Runs on the ``meta`` device when the model lives there (build it under ``torch.device("meta")``), so
    counting a large model at 1024×2048 costs no compute.
    """
    device = next(model.parameters()).device
    x = torch.empty(batch, getattr(model, "in_channels", 3), *input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
