"""Small export-safe tensor operations (static shapes, ops in TensorRT's ONNX support list)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over H and W, keeping dims. Exports as ReduceMean, never as an adaptive pool frozen at one size."""
    return x.mean(dim=(2, 3), keepdim=True)


def resize_to(x: torch.Tensor, size, mode: str = "bilinear", align_corners: bool | None = False) -> torch.Tensor:
    """Resize to an explicit output size (not a scale factor), so odd input sizes line up exactly.

    ``size`` may be a tensor's spatial shape (``y.shape[-2:]``) or an ``(H, W)`` tuple.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle as Reshape → Transpose → Reshape with a static 5-D shape (batch left free)."""
    _, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels do not split into {groups} groups")
    x = x.reshape(-1, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(-1, channels, height, width)
