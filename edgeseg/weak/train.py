"""The short classifier training behind ``edgeseg pseudo-label``: crops tagged with the classes they hold
(:class:`edgeseg.data.weak.WeakLabels` in mode ``image`` or ``crop:HxW``), the multi-label loss, Adam.

Only full tiles of the ``crop:HxW`` grid are used (a border tile is smaller); with ``image`` tags the whole image
is one example. The images are kept in memory, so the data for one run must fit there (``--limit``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from edgeseg.data.weak import WeakLabels
from edgeseg.errors import EdgesegError
from edgeseg.meta import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaggedCrop:
    """One training example: image ``index``, rows ``y0:y1`` and columns ``x0:x1``, its tags (C,) bool."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int
    tags: np.ndarray


def tagged_crops(weak: WeakLabels, labels: list[np.ndarray]) -> list[TaggedCrop]:
    """The training examples of every image from its dense label, through ``weak`` (``image`` or ``crop:HxW``)."""
    if weak.mode.kind not in ("image", "crop"):
        raise EdgesegError(f"pseudo-labels train on image or crop tags (image, crop:HxW), not {weak.mode}")
    crops = []
    for index, label in enumerate(labels):
        note = weak.annotate(index, label)
        if weak.mode.kind == "image":
            crops.append(TaggedCrop(index, 0, label.shape[0], 0, label.shape[1], note.base.copy()))
            continue
        th, tw = weak.mode.crop
        for (y0, y1, x0, x1), tags in zip(note.rects, note.rect_classes):
            if y1 - y0 + 1 == th and x1 - x0 + 1 == tw:
                crops.append(TaggedCrop(index, int(y0), int(y1) + 1, int(x0), int(x1) + 1, tags.copy()))
    if not crops:
        raise EdgesegError(f"no full {weak.mode} tile fits in the images ({labels[0].shape[0]}x"
                           f"{labels[0].shape[1]}); use a smaller crop")
    return crops


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB → (N, 3, H, W) ImageNet-normalised float."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.dim() == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def tag_statistics(crops: list[TaggedCrop], classes: list[str]) -> dict:
    """How often each class is tagged, and the mean number of tags per example (tags without variation teach
    a classifier nothing)."""
    tags = np.stack([c.tags for c in crops]).astype(np.float64)
    return {"examples": len(crops), "tags_per_example": round(float(tags.sum(1).mean()), 3),
            "tagged_fraction": {name: round(float(v), 4) for name, v in zip(classes, tags.mean(0))}}


def train_classifier(model: torch.nn.Module, images: list[np.ndarray], crops: list[TaggedCrop], steps: int,
                     batch_size: int = 8, lr: float = 1e-3, seed: int = 0,
                     loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     ) -> list[float]:
    """Train ``model`` (its ``loss(x, tags)``, or ``loss_fn(model, x, tags)``) for ``steps`` Adam steps on batches
    of ``crops`` drawn with ``seed``; returns the loss per step."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    model.train()
    losses = []
    for step in range(steps):
        chosen = rng.choice(len(crops), size=min(batch_size, len(crops)), replace=len(crops) < batch_size)
        batch = [crops[i] for i in chosen]
        x = to_tensor(np.stack([images[c.index][c.y0:c.y1, c.x0:c.x1] for c in batch]))
        if rng.random() < 0.5:
            x = x.flip(-1)
        tags = torch.from_numpy(np.stack([c.tags for c in batch]))
        loss = loss_fn(model, x, tags) if loss_fn else model.loss(x, tags)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == steps - 1:
            log.info("classifier step %d/%d loss %.4f", step + 1, steps, losses[-1])
    model.eval()
    return losses
