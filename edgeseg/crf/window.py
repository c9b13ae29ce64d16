"""Local windows: every cell's k×k neighbourhood as k² channels, the gather ConvCRF's messages and the gated CRF
loss (:mod:`edgeseg.train.gated_crf`) are built on.

Two forms with the same values bit for bit (the copies are exact): a grouped Conv with fixed one-hot k×k kernels,
the form an exported graph holds (no ``unfold``, no Gather: in TensorRT's support matrix), and torch's ``unfold``,
several times faster in training code (about 8× on a CPU for an 11×11 window).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift_kernels(channels: int, k: int) -> torch.Tensor:
    """Weights of a grouped Conv that copies each channel's k×k neighbourhood into k² channels."""
    eye = torch.eye(k * k, dtype=torch.float32).view(k * k, 1, k, k)
    return eye.repeat(channels, 1, 1, 1)


def window(x: torch.Tensor, k: int, kernels: torch.Tensor | None = None) -> torch.Tensor:
    """(N, F, h, w) → (N, F, k², h, w): every cell's k×k neighbourhood (row-major, the centre at ``k² // 2``),
    zero outside the image. With ``kernels`` (:func:`shift_kernels` of F channels) the gather is the grouped
    Conv an export needs; without, ``unfold``."""
    n, f, h, w = x.shape
    if kernels is not None:
        return F.conv2d(x, kernels, padding=k // 2, groups=f).view(n, f, k * k, h, w)
    return F.unfold(x, k, padding=k // 2).view(n, f, k * k, h, w)
