"""MobileNetV2 (Sandler et al., CVPR 2018) with ``torchvision.models.mobilenet_v2``'s state-dict names.

``features.0`` is the 3×3 stride-2 stem, ``features.1..17`` the inverted residual blocks (``.conv.<i>`` as in
torchvision); the final 1×1 to 1280 (``features.18``) and the classifier are not built, as in DeepLab v3+'s
MobileNetV2 variant, and their keys are ignored on load. Output stride 16 or 8 replaces the stride of the
last stride-2 stage(s) with dilation (Sandler et al. §6.3).
"""

from __future__ import annotations

import torch
from torch import nn

# expansion t, output channels c, repeats n, stride s (paper Table 2)
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: keys ``0.weight`` (conv), ``1.*`` (BN)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, dilation: int = 1) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                   bias=False), nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, hidden, 1)] if expansion != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Returns ``[low_level (stride 4, 24 ch), high_level (output stride, 320 ch)]``."""

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, 2)]
        stride_so_far, dilation, channels = 2, 1, 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                stride = s if i == 0 else 1
                previous = dilation
                if stride == 2 and stride_so_far >= output_stride:
                    dilation *= 2
                    stride = 1
                else:
                    stride_so_far *= stride
                layers.append(InvertedResidual(channels, c, stride, t, previous if i == 0 else dilation))
                channels = c
        self.features = nn.Sequential(*layers)
        self.channels = (24, 320)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        low_level = self.features[:4](x)
        return [low_level, self.features[4:](low_level)]
