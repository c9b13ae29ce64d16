"""Build a runner's feed dict from frames: ``image`` always, ``depth`` for an RGB-D model. No torch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.preprocess import to_batch

DEPTH = "depth"


def takes_depth(runner) -> bool:
    """Whether the runner's graph has a ``depth`` input (an RGB-D model such as acnet)."""
    return any(spec.name == DEPTH for spec in runner.inputs())


def make_feed(runner, images: Sequence[np.ndarray], size: tuple[int, int],
              depths: Sequence[np.ndarray | None] | None = None) -> dict[str, np.ndarray]:
    """Frames (any size) → the runner's inputs at the deploy ``size``; an RGB-D runner needs a depth per frame."""
    from edgeseg.data.depth import resize_depth

    specs = runner.inputs()
    feed = {specs[0].name: to_batch(list(images), size)}
    if any(spec.name == DEPTH for spec in specs):
        if depths is None or any(d is None for d in depths):
            raise EdgesegError(f"{runner.name} is an RGB-D model and needs a depth map with every frame "
                               "(an image folder with --depth DIR, or a dataset with depth)")
        feed[DEPTH] = np.stack([resize_depth(np.asarray(d, np.float32), size) for d in depths])
    return feed
