"""Learning-rate schedule: linear warm-up then polynomial decay (DeepLab's "poly")."""

from __future__ import annotations

import torch


def poly_warmup_factor(iteration: int, total: int, warmup: int = 0, power: float = 0.9,
                       warmup_start: float = 0.1) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based)."""
    if warmup and iteration < warmup:
        return warmup_start + (1 - warmup_start) * iteration / warmup
    progress = min(max(iteration - warmup, 0) / max(total - warmup, 1), 1.0)
    return (1 - progress) ** power


def poly_warmup(optimizer: torch.optim.Optimizer, total: int, warmup: int = 0, power: float = 0.9):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: poly_warmup_factor(it, total, warmup, power))
