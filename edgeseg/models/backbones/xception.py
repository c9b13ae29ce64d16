"""Aligned Xception-65, the DeepLab v3+ backbone (Chen et al., ECCV 2018, §3.2 and Fig. 4).

Changes from Xception (Chollet, CVPR 2017) as the paper lists them: deeper (16 middle-flow units instead of 8),
every max-pool replaced by a stride-2 depthwise separable convolution (so atrous convolution can take its place
at output stride 16 or 8), and BN + ReLU after every 3×3 depthwise convolution. Widths follow Fig. 4: entry
flow 32, 64, then units of 128, 256, 728; middle flow 16 × 728; exit flow 728-1024-1024 then 1536, 1536, 2048.
There is no torchvision Xception, so the state-dict names are ours.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.conv import ConvBNAct, SeparableConvBNAct


class XceptionUnit(nn.Module):
    """Three separable convs; a 1×1 conv-BN shortcut when the shape changes, identity otherwise.

    ``forward`` returns ``(out, tap)`` where ``tap`` is the second conv's output (before any stride), the
    decoder's low-level feature in DeepLab v3+.
    """

    def __init__(self, in_channels: int, widths: tuple[int, int, int], stride: int = 1, dilation: int = 1,
                 first_dilation: int | None = None) -> None:
        super().__init__()
        first = dilation if first_dilation is None else first_dilation
        self.sep1 = SeparableConvBNAct(in_channels, widths[0], dilation=first, depthwise_act=True)
        self.sep2 = SeparableConvBNAct(widths[0], widths[1], dilation=dilation, depthwise_act=True)
        self.sep3 = SeparableConvBNAct(widths[1], widths[2], stride=stride, dilation=dilation, depthwise_act=True)
        self.shortcut = (ConvBNAct(in_channels, widths[2], 1, stride=stride, act=None)
                         if stride != 1 or in_channels != widths[2] else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tap = self.sep2(self.sep1(x))
        out = self.sep3(tap)
        return out + (x if self.shortcut is None else self.shortcut(x)), tap


class AlignedXception(nn.Module):
    """Returns ``[low_level (stride 4, 256 ch), high_level (output stride, 2048 ch)]``."""

    def __init__(self, output_stride: int = 16, middle_units: int = 16) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        entry3_stride = 1 if output_stride == 8 else 2
        middle_dilation = 2 if output_stride == 8 else 1
        exit_stride = 2 if output_stride == 32 else 1
        exit_dilation = {32: 1, 16: 2, 8: 4}[output_stride]
        self.stem = nn.Sequential(ConvBNAct(3, 32, 3, stride=2), ConvBNAct(32, 64, 3))
        self.entry1 = XceptionUnit(64, (128, 128, 128), stride=2)
        self.entry2 = XceptionUnit(128, (256, 256, 256), stride=2)
        self.entry3 = XceptionUnit(256, (728, 728, 728), stride=entry3_stride)
        self.middle = nn.ModuleList(XceptionUnit(728, (728, 728, 728), dilation=middle_dilation)
                                    for _ in range(middle_units))
        self.exit1 = XceptionUnit(728, (728, 1024, 1024), stride=exit_stride, dilation=exit_dilation,
                                  first_dilation=middle_dilation)
        self.exit2 = nn.Sequential(
            SeparableConvBNAct(1024, 1536, dilation=exit_dilation, depthwise_act=True),
            SeparableConvBNAct(1536, 1536, dilation=exit_dilation, depthwise_act=True),
            SeparableConvBNAct(1536, 2048, dilation=exit_dilation, depthwise_act=True))
        self.channels = (256, 2048)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, _ = self.entry1(self.stem(x))
        x, low_level = self.entry2(x)
        x, _ = self.entry3(x)
        for unit in self.middle:
            x, _ = unit(x)
        x, _ = self.exit1(x)
        return [low_level, self.exit2(x)]
