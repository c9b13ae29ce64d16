"""Channel attention gates (BiSeNet's ARM and FFM, squeeze-and-excitation)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.ops import global_avg_pool


class ChannelGate(nn.Module):
    """Global average pool → 1×1 conv(s) → sigmoid, returning per-channel weights ``(N, C, 1, 1)``.

    * ``hidden=None``: one 1×1 conv + BN (BiSeNet's attention refinement module, Yu et al. ECCV 2018 Fig. 2b).
    * ``hidden=h``: 1×1 conv to ``h`` → ReLU → 1×1 conv back (BiSeNet's FFM Fig. 2c; SE, Hu et al. CVPR 2018).
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        if hidden is None:
            self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        else:
            self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                    nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(global_avg_pool(x)))
