"""Several sources as one training set (``TrainConfig.extra_train_data``): same classes, samples in order."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from edgeseg.data.base import SegmentationSource
from edgeseg.errors import EdgesegError


def check_same_classes(first: SegmentationSource, other: SegmentationSource, what: str) -> None:
    """Refuse ``other`` when its class list is not ``first``'s (same names, same order): its label values would
    mean other classes."""
    if other.classes != first.classes:
        raise EdgesegError(f"{what} ({other.name}) has the classes {', '.join(other.classes)}; the training data "
                           f"({first.name}) has {', '.join(first.classes)}: class lists must be equal")


class ConcatSource(SegmentationSource):
    """The samples of ``sources`` one after another; they must share their class list and ignore value."""

    def __init__(self, sources: Sequence[SegmentationSource]) -> None:
        if not sources:
            raise ValueError("ConcatSource needs at least one source")
        first = sources[0]
        for other in sources[1:]:
            check_same_classes(first, other, "extra training data")
            if other.ignore_index != first.ignore_index:
                raise EdgesegError(f"{other.name} ignores {other.ignore_index}, {first.name} {first.ignore_index}")
        super().__init__(first.classes, first.palette, first.ignore_index)
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)
        self._starts = np.cumsum([0] + [len(s) for s in self.sources]).tolist()

    def __len__(self) -> int:
        return self._starts[-1]

    def _locate(self, index: int) -> tuple[SegmentationSource, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect.bisect_right(self._starts, index) - 1
        return self.sources[k], index - self._starts[k]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        source, local = self._locate(index)
        return source[local]

    def rgbd(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source, local = self._locate(index)
        return source.rgbd(local)

    def sample_id(self, index: int) -> str:
        source, local = self._locate(index)
        return source.sample_id(local)
