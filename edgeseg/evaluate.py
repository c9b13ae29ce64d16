"""Evaluate a torch model on a dataset split: one confusion matrix over the whole split."""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.data.base import SegmentationSource
from edgeseg.data.geometry import DEFAULT_RESIZE, frame_to_input, labels_to_frame, map_to_input
from edgeseg.data.torch_dataset import depth_tensor, to_tensor
from edgeseg.errors import EdgesegError
from edgeseg.metrics import BoundaryFScore, ConfusionMatrix
from edgeseg.progress import Progress
from edgeseg.runtime.evaluate import announce, split_summary


@torch.no_grad()
def select_device(spec: str) -> torch.device:
    """``auto`` (CUDA when torch sees a GPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA without a GPU is refused."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise EdgesegError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EdgesegError(f"device {spec} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise EdgesegError(f"device {spec} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise EdgesegError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    return device


def evaluate_model(model: torch.nn.Module, source: SegmentationSource, *, num_classes: int, mean, std,
                   device: torch.device | str = "cpu", max_images: int | None = None, rank: int = 0,
                   world_size: int = 1, boundary: bool = False, progress: bool = False,
                   size: tuple[int, int] | None = None, mode: str = DEFAULT_RESIZE) -> ConfusionMatrix:
    """Run ``model`` (eval mode, batch 1) over the split; each rank takes every ``world_size``-th image.
    Images are scored at their own size, or, given ``size``, fitted to it by ``mode`` and the labels mapped back
    (as a bundle is scored, :mod:`edgeseg.data.geometry`). Returns the confusion matrix (``.boundary`` holds the
    boundary F-score)."""
    was_training = model.training
    model.eval()
    count = len(source) if max_images is None else min(max_images, len(source))
    indices = range(rank, count, world_size)
    rgbd = getattr(model, "in_channels", 3) == 4
    cm = ConfusionMatrix(num_classes, source.ignore_index)
    bf = BoundaryFScore() if boundary else None
    if progress:
        where = "at each image's own size" if size is None else (f"fitted to {size[0]}x{size[1]} ({mode}), labels "
                                                                  "mapped back to each image's size")
        announce(f"scoring {split_summary(source, count)} with torch on {device} {where}")
    bar = Progress(len(indices), "validate torch", enabled=progress)
    try:
        for i in indices:
            image, label, *depth = source.rgbd(i) if rgbd else source[i]
            frame = image.shape[:2]
            if size is not None:
                image, depth = frame_to_input(image, size, mode), [map_to_input(d, size, mode) for d in depth]
            x = to_tensor(image, mean, std)
            if depth:
                x = torch.cat([x, depth_tensor(depth[0])], dim=0)
            x = x[None].to(device)
            pred = model(x).argmax(1)[0].cpu().numpy().astype(np.uint8 if size is not None else np.int64)
            if size is not None:
                pred = labels_to_frame(pred, frame, mode).astype(np.int64)
            cm.update(pred, label)
            if bf is not None:
                bf.update(pred, label)
            bar.update()
    finally:
        bar.close()
        model.train(was_training)
    cm.boundary = bf.compute() if bf is not None else None
    return cm
