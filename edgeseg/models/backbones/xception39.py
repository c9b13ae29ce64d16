"""Xception39, the small Xception-style context-path backbone of BiSeNet (Yu et al., ECCV 2018).

BiSeNet names the backbone but gives no widths. The authors' code (TorchSeg, ``furnace/base_model``) builds
it as a 3×3 stride-2 stem, a max-pool, and three stages of 4 / 8 / 4 residual blocks; each block is three
separable convolutions ``mid → mid → 4·mid`` with a separable stride-2 projection on the first block of a
stage; stem 8 channels, stage outputs 64 / 128 / 256. These widths reproduce the paper's 2.9 GFLOPs for
BiSeNet-Xception39 at 640×360 (see :class:`edgeseg.models.bisenetv1.BiSeNetV1`).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.conv import ConvBNAct, SeparableConvBNAct


class XceptionBlock(nn.Module):
    """Three separable convs (``mid, mid, expansion·mid``) on a residual path; ReLU after the sum."""

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1, expansion: int = 4,
                 depthwise_bn: bool = True) -> None:
        super().__init__()
        out_channels = mid_channels * expansion
        bn = depthwise_bn
        self.proj = (SeparableConvBNAct(in_channels, out_channels, 3, stride, act=None, depthwise_bn=bn)
                     if stride != 1 or in_channels != out_channels else None)
        self.residual = nn.Sequential(
            SeparableConvBNAct(in_channels, mid_channels, 3, stride, depthwise_bn=bn),
            SeparableConvBNAct(mid_channels, mid_channels, 3, depthwise_bn=bn),
            SeparableConvBNAct(mid_channels, out_channels, 3, act=None, depthwise_bn=bn),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(self.residual(x) + shortcut)


class Xception39(nn.Module):
    """Returns the features of the three stages (strides 8, 16, 32).

    ``depthwise_bn=False`` leaves out the BN between each depthwise and pointwise conv, as the authors'
    TorchSeg backbone does (its separable conv is depthwise conv → pointwise conv-BN-ReLU)."""

    def __init__(self, stem_channels: int = 8, mid_channels: tuple[int, int, int] = (16, 32, 64),
                 blocks: tuple[int, int, int] = (4, 8, 4), expansion: int = 4, depthwise_bn: bool = True) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        in_channels = stem_channels
        for mid, count in zip(mid_channels, blocks):
            layers = [XceptionBlock(in_channels, mid, 2, expansion, depthwise_bn)]
            in_channels = mid * expansion
            layers += [XceptionBlock(in_channels, mid, 1, expansion, depthwise_bn) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(m * expansion for m in mid_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.stem(x))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
