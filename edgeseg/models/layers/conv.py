"""Convolution blocks shared by every model: conv-BN-act and depthwise separable convolution."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Activation = Callable[[], nn.Module] | None


def _padding(kernel_size: int | tuple[int, int], dilation: int | tuple[int, int]) -> tuple[int, int]:
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    return ((k[0] - 1) // 2 * d[0], (k[1] - 1) // 2 * d[1])


class ConvBNAct(nn.Module):
    """``Conv2d`` (no bias, "same" padding) → ``BatchNorm2d`` → activation (ReLU unless ``act=None``).

    State-dict keys: ``conv.weight``, ``bn.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3,
                 stride: int = 1, dilation: int | tuple[int, int] = 1, groups: int = 1,
                 act: Activation = nn.ReLU, bn_eps: float = 1e-5, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              _padding(kernel_size, dilation), dilation, groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SeparableConvBNAct(nn.Module):
    """Depthwise k×k conv (+BN) followed by pointwise 1×1 conv → BN → activation (Chollet, CVPR 2017).

    ``depthwise_bn=False`` gives Xception's original form (no normalisation between the two convs);
    ``depthwise_act=True`` adds a ReLU after the depthwise BN (DeepLab v3+'s aligned Xception, Chen et al. 2018 §3.2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, act: Activation = nn.ReLU, depthwise_bn: bool = True,
                 depthwise_act: bool = False) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride,
                                   _padding(kernel_size, dilation), dilation, groups=in_channels, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(in_channels) if depthwise_bn else nn.Identity()
        self.depthwise_act = nn.ReLU(inplace=True) if depthwise_act else nn.Identity()
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, act=act)

    def forward(self, x):
        return self.pointwise(self.depthwise_act(self.depthwise_bn(self.depthwise(x))))
