"""The torch view of a :class:`~edgeseg.data.base.SegmentationSource`: normalized CHW tensors, long labels."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeseg.data.base import SegmentationSource


def to_tensor(image: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 H×W×3 RGB → float CHW, scaled to [0, 1] and normalized (the deploy graph does the same)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


class TorchSegmentationDataset(Dataset):
    """Applies a numpy transform with a per-sample generator seeded from ``(seed, epoch, index)``.

    Indexed by an int, or by ``(index, epoch)`` as :class:`edgeseg.train.sampler.ResumableSampler` yields, so
    augmentation is the same whichever worker process draws the sample.
    """

    def __init__(self, source: SegmentationSource, transform=None, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), seed: int = 0) -> None:
        self.source, self.transform = source, transform
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        image, label = self.source[index]
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, epoch, index))
            image, label = self.transform(image, label, rng)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(label.astype(np.int64))
