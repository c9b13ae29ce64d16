"""The torch view of a :class:`~edgeseg.data.base.SegmentationSource`: normalized CHW tensors, long labels."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeseg.data.base import SegmentationSource
from edgeseg.data.depth import DEPTH_MEAN_M, DEPTH_STD_M

VALID = "valid"  # the side map of ones that the geometric transform pads with 0


def to_tensor(image: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 H×W×3 RGB → float CHW, scaled to [0, 1] and normalized (the deploy graph does the same)."""
    # np.array copies: decoded images are read-only, and torch.from_numpy warns about those
    x = torch.from_numpy(np.array(image, np.float32)).permute(2, 0, 1).div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def depth_tensor(depth: np.ndarray) -> torch.Tensor:
    """float32 H×W metres → normalised 1×H×W, as the deploy graph normalises its ``depth`` input."""
    return (torch.from_numpy(np.array(depth, np.float32)) - DEPTH_MEAN_M).div_(DEPTH_STD_M)[None]


class TorchSegmentationDataset(Dataset):
    """Applies a numpy transform with a per-sample generator seeded from ``(seed, epoch, index)``.

    With ``depth`` (RGB-D models) the sample is the source's ``rgbd`` and the tensor has a 4th channel, the
    normalised depth. Indexed by an int, or by ``(index, epoch)`` as
    :class:`edgeseg.train.sampler.ResumableSampler` yields, so augmentation is the same whichever worker
    process draws the sample.

    With ``weak`` (a :class:`edgeseg.data.weak.WeakLabels`) the label is the sample's weak annotation, drawn
    after the transform's geometry: long H×W (255 = unlabelled), or bool C×H×W allowed classes. With ``valid``
    the sample is ``(x, label, valid)``, ``valid`` a float H×W map: 1 on the image, 0 where the crop padded.
    """

    def __init__(self, source: SegmentationSource, transform=None, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), seed: int = 0, depth: bool = False, valid: bool = False,
                 weak=None) -> None:
        self.source, self.transform, self.depth = source, transform, depth
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed
        self.valid, self.weak = valid, weak

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        image, label, *depth = self.source.rgbd(index) if self.depth else self.source[index]
        side = {VALID: np.ones(label.shape, np.uint8)} if self.valid else {}
        if self.weak is not None:
            annotation = self.weak.annotate(index, label)
            side.update(self.weak.coordinates(label.shape))
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, epoch, index))
            image, label, *rest = self.transform(image, label, rng, depth=depth[0] if depth else None,
                                                 side=side or None)
            depth, side = rest[:1] if depth else [], rest[-1] if side else side
        x = to_tensor(image, self.mean, self.std)
        if depth:
            x = torch.cat([x, depth_tensor(depth[0])], dim=0)
        if self.weak is None:
            target = torch.from_numpy(label.astype(np.int64))
        else:
            weak = self.weak.target(annotation, label, side)
            target = torch.from_numpy(weak.astype(np.int64) if weak.ndim == 2 else weak)
        if self.valid:
            return x, target, torch.from_numpy(side[VALID].astype(np.float32))
        return x, target
