"""Segmentation heads: a 3×3 conv-BN-ReLU, dropout, and a 1×1 classifier."""

from __future__ import annotations

from torch import nn

from edgeseg.models.layers.conv import ConvBNAct


class SegHead(nn.Module):
    """``ConvBNAct(3×3, mid)`` → ``Dropout`` → ``Conv2d(1×1, num_classes)`` with bias.

    The classifier is ``cls``: checkpoints whose class count differs drop ``*.cls.*`` keys.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.cls = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, x):
        return self.cls(self.drop(self.conv(x)))
