"""Learned upsampling: a transposed convolution initialised to bilinear interpolation (FCN, Long et al. §3.3)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.ops import resize_to


def bilinear_kernel(size: int) -> torch.Tensor:
    """The ``size × size`` bilinear interpolation filter Caffe's FCN initialises its deconvolutions with."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    return filt[:, None] * filt[None, :]


class LearnedUpsample(nn.Module):
    """``ConvTranspose2d(k=2f, stride=f, padding=f/2)``: exactly ``f×`` larger, bilinear at initialisation.

    Channel ``i`` maps to channel ``i`` only at init (off-diagonal kernels zero) but every kernel is learned,
    as in FCN's ``upscore`` layers. ``forward(x, like)`` resizes to ``like``'s size when an odd input makes
    the ``f×`` map one pixel off (Caffe's FCN crops instead).
    """

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"upsampling factor must be even and >= 2, got {factor}")
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, factor, factor // 2, bias=False)
        with torch.no_grad():
            self.deconv.weight.zero_()
            kernel = bilinear_kernel(2 * factor)
            for c in range(channels):
                self.deconv.weight[c, c] = kernel

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        return resize_to(self.deconv(x), size)
