"""Multi-scale context modules shared by the classic models: ASPP (DeepLab v3 / v3+, FastFCN's ASPP head) and
the pyramid pooling module (PSPNet, FastFCN's PSP head), both export-safe at a fixed deploy size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.layers.conv import ConvBNAct, SeparableConvBNAct
from edgeseg.models.layers.ops import global_avg_pool, resize_to


def broadcast_to(x: torch.Tensor, size) -> torch.Tensor:
    """Tile an ``(N, C, 1, 1)`` vector over ``size``: a Tile with constant repeats, no Shape subgraph."""
    return x.repeat(1, 1, int(size[0]), int(size[1]))


def bin_pooling_kernel(size: int, bins: int) -> tuple[int, int]:
    """``(kernel, stride)`` of a fixed average pool giving ``bins`` outputs over ``size`` inputs.

    Equal to adaptive average pooling when ``bins`` divides ``size``; otherwise the windows overlap by a
    constant amount instead of varying in size (what PSPNet deployments do for TensorRT).
    """
    if size < bins:
        raise ValueError(f"cannot pool {size} positions into {bins} bins; use a larger input")
    stride = size // bins
    return size - (bins - 1) * stride, stride


def bin_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Average-pool ``x`` to ``bins × bins`` with kernels fixed from its (static) spatial size."""
    if bins == 1:
        return global_avg_pool(x)
    kh, sh = bin_pooling_kernel(int(x.shape[-2]), bins)
    kw, sw = bin_pooling_kernel(int(x.shape[-1]), bins)
    return F.avg_pool2d(x, (kh, kw), (sh, sw))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al., CVPR 2017, Fig. 3): pool to 1/2/3/6 bins, 1×1 conv to
    ``C/len(bins)`` each, upsample bilinearly, concatenate with the input. Output ``2·C`` channels."""

    def __init__(self, in_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6), align_corners: bool = True) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.align_corners = align_corners
        self.stages = nn.ModuleList(ConvBNAct(in_channels, in_channels // len(bins), 1) for _ in bins)
        self.out_channels = in_channels + len(bins) * (in_channels // len(bins))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = []
        for bins, stage in zip(self.bins, self.stages):
            y = stage(bin_pool(x, bins))
            pooled.append(broadcast_to(y, size) if bins == 1 else resize_to(y, size, align_corners=self.align_corners))
        return torch.cat([x, *pooled], dim=1)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image-level features (DeepLab v3, Chen et al. 2017, §3.3 / Fig. 5):
    a 1×1 conv, three 3×3 atrous convs, global pooling → 1×1 conv; concatenated, then 1×1 conv-BN-ReLU and
    dropout. ``separable=True`` makes the atrous convs depthwise separable (DeepLab v3+ §3.2)."""

    def __init__(self, in_channels: int, rates: tuple[int, int, int] = (6, 12, 18), channels: int = 256,
                 separable: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBNAct(in_channels, channels, 1)]
        for rate in rates:
            branches.append(SeparableConvBNAct(in_channels, channels, 3, dilation=rate, depthwise_act=True)
                            if separable else ConvBNAct(in_channels, channels, 3, dilation=rate))
        self.branches = nn.ModuleList(branches)
        self.image_pool = ConvBNAct(in_channels, channels, 1)
        self.project = ConvBNAct(channels * (len(rates) + 2), channels, 1)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(broadcast_to(self.image_pool(global_avg_pool(x)), x.shape[-2:]))
        return self.drop(self.project(torch.cat(outs, dim=1)))
