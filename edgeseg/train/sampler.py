"""An endless, resumable, rank-sharded sample order: epoch ``e`` is a permutation seeded by ``(seed, e)``."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler):
    """Yields ``(index, epoch)`` forever; ``start`` skips that many samples of this rank's stream, so a run
    resumed at iteration ``i`` sees exactly the samples an uninterrupted run would."""

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < world_size:
            raise ValueError(f"{size} samples cannot be split over {world_size} ranks")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start
        self.per_rank = size // world_size

    def __iter__(self):
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.size, generator=g)[self.rank::self.world_size][: self.per_rank]
            for index in order[offset:].tolist():
                yield index, epoch
            epoch, offset = epoch + 1, 0
