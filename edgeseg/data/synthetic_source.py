"""The synthetic street scenes as a dataset split (see :mod:`edgeseg.data.synthetic`)."""

from __future__ import annotations

import numpy as np

from edgeseg.data.base import SegmentationSource
from edgeseg.data.synthetic import CLASSES, DEFAULT_SIZE, PALETTE, TRAIN_SEED0, VAL_SEED0, render_scene
from edgeseg.errors import EdgesegError

DEFAULT_TRAIN_SIZE = 2000
VAL_SIZE = 100


class SyntheticSource(SegmentationSource):
    """``count`` scenes from a seed range: train seeds start at 0, val seeds at 1,000,000 (disjoint)."""

    name = "synthetic"

    def __init__(self, split: str = "train", count: int | None = None, size: tuple[int, int] = DEFAULT_SIZE):
        super().__init__(CLASSES, PALETTE)
        if split not in ("train", "val"):
            raise EdgesegError(f"synthetic scenes have the splits train and val, not {split!r}")
        self.split = split
        self.seed0 = TRAIN_SEED0 if split == "train" else VAL_SEED0
        self.count = count or (DEFAULT_TRAIN_SIZE if split == "train" else VAL_SIZE)
        self.size = tuple(size)
        self.name = f"synthetic/{split}"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return render_scene(self.seed0 + index, self.size)

    def rgbd(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return render_scene(self.seed0 + index, self.size, with_depth=True)

    def sample_id(self, index: int) -> str:
        return f"scene_{self.seed0 + index}"
