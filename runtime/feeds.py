"""Build a runner's feed dict from frames: ``image`` always, ``depth`` for an RGB-D model. No torch.

Callers take ``runner.inputs()`` once and pass the specs, so nothing here queries the runner per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeseg.data.geometry import DEFAULT_RESIZE, frames_to_batch, map_to_input
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import DEPTH_INPUT, takes_depth
from edgeseg.runtime.runner import TensorSpec


def specs_take_depth(specs: Sequence[TensorSpec]) -> bool:
    """Whether a runner's inputs include ``depth`` (an RGB-D model such as acnet)."""
    return takes_depth(spec.name for spec in specs)


def image_geometry(name: str, specs: Sequence[TensorSpec]) -> tuple[int | None, tuple[int, int]]:
    """``(static batch or None when dynamic, (H, W))`` of a graph's image input, which must be the deploy
    contract: uint8 N×H×W×3 with a static size. A graph that takes something else is refused with one line."""
    if not specs:
        raise EdgesegError(f"{name} has no inputs")
    spec = specs[0]
    shape = tuple(spec.shape)
    if (spec.dtype != "uint8" or len(shape) != 4 or shape[3] != 3
            or not all(isinstance(d, int) and d > 0 for d in shape[1:3])):
        raise EdgesegError(f"{name} takes {spec.name!r} as {spec.dtype} {'x'.join(map(str, shape))}; edgeseg runs "
                           f"graphs that take uint8 N×H×W×3 images of a static size (edgeseg export writes them)")
    return (shape[0] if isinstance(shape[0], int) else None), (int(shape[1]), int(shape[2]))


def frames_as_they_are(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Camera frames for a graph that takes frames of ``size`` and places them itself (``--frame-size``): batched
    untouched (one frame: a view, no copy); a frame of another size is refused with one line."""
    for image in images:
        if tuple(image.shape[:2]) != tuple(size) or image.ndim != 3 or image.shape[2] != 3:
            got = "x".join(map(str, image.shape[:2])) if image.ndim >= 2 else str(image.shape)
            raise EdgesegError(f"a {got} frame reached a bundle exported for {size[0]}x{size[1]} frames "
                               f"(--frame-size): the graph places frames of that size only; re-export with "
                               f"--frame-size {got}, or without --frame-size to resize on the host")
    batch = images[0][None] if len(images) == 1 else np.stack(list(images))
    return batch if batch.dtype == np.uint8 else batch.astype(np.uint8)


def make_feed(specs: Sequence[TensorSpec], images: Sequence[np.ndarray], size: tuple[int, int],
              depths: Sequence[np.ndarray | None] | None = None, mode: str = DEFAULT_RESIZE, *,
              frame_in_graph: bool = False) -> dict[str, np.ndarray]:
    """Frames (any size) → the inputs ``specs`` name, at the deploy ``size``, fitted by the bundle's resize
    ``mode`` (:mod:`edgeseg.data.geometry`); RGB-D needs a depth per frame. ``frame_in_graph`` (a bundle exported
    with ``--frame-size``, ``size`` its frame size): the frames go in untouched (:func:`frames_as_they_are`)."""
    batch = frames_as_they_are(images, size) if frame_in_graph else frames_to_batch(list(images), size, mode)
    feed = {specs[0].name: batch}
    if specs_take_depth(specs):
        if depths is None or any(d is None for d in depths):
            raise EdgesegError("this is an RGB-D model and needs a depth map with every frame (an image folder "
                               "with --depth DIR, or a dataset with depth)")
        feed[DEPTH_INPUT] = np.stack([map_to_input(np.asarray(d, np.float32), size, mode) for d in depths])
    return feed
