"""Channel attention gates (BiSeNet's ARM and FFM, squeeze-and-excitation)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.ops import global_avg_pool


class ChannelGate(nn.Module):
    """Global average pool → 1×1 conv(s) → sigmoid, returning per-channel weights ``(N, C, 1, 1)``.

    * ``hidden=None``: one 1×1 conv + BN (BiSeNet's attention refinement module, Yu et al. ECCV 2018 Fig. 2b).
    * ``hidden=h``: 1×1 conv to ``h`` → ReLU → 1×1 conv back (BiSeNet's FFM Fig. 2c; SE, Hu et al. CVPR 2018).
    * ``norm=False`` (with ``hidden=None``): one 1×1 conv with bias and no BN (ACNet's attention, Fig. 2).
    """

    def __init__(self, channels: int, hidden: int | None = None, norm: bool = True) -> None:
        super().__init__()
        if hidden is None and not norm:
            self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1))
        elif hidden is None:
            self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        else:
            self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                    nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(global_avg_pool(x)))


class PositionAttention(nn.Module):
    """DANet's position attention module (Fu et al. CVPR 2019, Fig. 3a): every position attends to every
    other; query/key 1×1 convs to ``C/8``, value 1×1 conv, output ``γ·attended + x`` with γ initialised to 0.

    The attention matrix is ``(H·W)²`` per image: see :func:`position_attention_bytes`.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        q = self.query(x).reshape(-1, self.query.out_channels, h * w)
        k = self.key(x).reshape(-1, self.key.out_channels, h * w)
        attention = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)
        v = self.value(x).reshape(-1, c, h * w)
        out = torch.bmm(v, attention.transpose(1, 2)).reshape(-1, c, h, w)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """DANet's channel attention module (Fig. 3b): a ``C×C`` affinity of the channels (max-subtracted before
    the softmax, as the authors' code), output ``β·attended + x`` with β initialised to 0. No convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        flat = x.reshape(-1, c, h * w)
        energy = torch.bmm(flat, flat.transpose(1, 2))
        energy = energy.max(dim=-1, keepdim=True).values - energy
        out = torch.bmm(torch.softmax(energy, dim=-1), flat).reshape(-1, c, h, w)
        return self.gamma * out + x


def position_attention_bytes(size: tuple[int, int], stride: int, batch: int = 1, bytes_per_value: int = 4) -> int:
    """Bytes of the position-attention matrix at input ``size`` with features at ``stride``: ``b·(h·w)²·4``."""
    n = (size[0] // stride) * (size[1] // stride)
    return batch * n * n * bytes_per_value
