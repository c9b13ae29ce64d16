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
    in_size = (int(x.shape[-2]), int(x.shape[-1]))
    if in_size == size:
        return x
    corners = None if mode == "nearest" else align_corners
    if all(o % i == 0 for o, i in zip(size, in_size)):
        # An exact integer upsampling: pass the factor, so the exported Resize takes constant scales instead of
        # sizes computed from the input's shape (which a dynamic batch would turn into a Shape subgraph).
        factor = (float(size[0] // in_size[0]), float(size[1] // in_size[1]))
        return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=corners)
    return F.interpolate(x, size=size, mode=mode, align_corners=corners)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle as Reshape → Transpose → Reshape with a static 5-D shape (batch left free)."""
    _, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels do not split into {groups} groups")
    x = x.reshape(-1, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(-1, channels, height, width)
