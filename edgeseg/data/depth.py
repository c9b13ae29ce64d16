"""Depth maps for RGB-D models (ACNet): reading, resizing, normalising, and the synthetic scenes' depth.

A depth map is float32 H×W in metres; 0 means "no measurement" (sky, sensor holes). Files: 16-bit PNG in
millimetres (NYUDv2 / SUN RGB-D / RealSense convention) or ``.npy`` in metres. Depth files pair with images
by file stem (``frame_0001.png`` ↔ ``frame_0001.png`` / ``.npy`` in the depth folder). Depth is resized like
labels, by nearest neighbour (:func:`edgeseg.data.geometry.resize_labels`): interpolating across a hole or an
object edge would invent distances. No torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError

DEPTH_SUFFIXES = (".png", ".npy")
# In-graph normalisation: (d - 5 m) / 5 m maps the 0-10 m range of indoor RGB-D sensors to [-1, 1].
DEPTH_MEAN_M = 5.0
DEPTH_STD_M = 5.0
FAR_M = 80.0  # the synthetic scenes' farthest ground and background distance


def read_depth(path: str | os.PathLike) -> np.ndarray:
    """Decode a depth file to float32 metres; an unreadable file is an :class:`EdgesegError`."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            depth = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode not in ("I", "I;16", "I;16B", "L"):
                    raise EdgesegError(f"depth {path} is {im.mode}, expected a 16-bit PNG in millimetres")
                depth = np.asarray(im, dtype=np.float32) / 1000.0
    except (OSError, ValueError) as exc:
        raise EdgesegError(f"cannot decode depth {path}: {exc}") from exc
    if depth.ndim != 2:
        raise EdgesegError(f"depth {path} has shape {depth.shape}, expected H×W")
    return depth


def find_depth(depth_dir: str | os.PathLike, stem: str) -> Path:
    """The depth file for image ``stem`` in ``depth_dir``; missing is an :class:`EdgesegError`."""
    for suffix in DEPTH_SUFFIXES:
        candidate = Path(depth_dir) / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise EdgesegError(f"no depth map for {stem} in {depth_dir} (expected {stem}.png in mm or {stem}.npy in m)")


def scene_depth(label: np.ndarray, horizon: int, ground: tuple[int, ...], sky: int,
                near_m: float = 3.0) -> np.ndarray:
    """Depth of a synthetic scene from its labels: the ground plane seen from a level camera (distance
    inversely proportional to the rows below the horizon, ``near_m`` at the bottom row), upright objects at
    the distance of the ground where they stand (their lowest pixel in each column), sky 0, anything above
    the horizon that is not sky at :data:`FAR_M`."""
    h, w = label.shape
    rows = np.arange(h, dtype=np.float32)
    ground_depth = np.where(rows > horizon, near_m * (h - 1 - horizon) / np.maximum(rows - horizon, 1e-3), FAR_M)
    ground_depth = np.minimum(ground_depth, FAR_M).astype(np.float32)
    is_ground = np.isin(label, ground)
    depth = np.empty((h, w), np.float32)
    below = np.full(w, ground_depth[-1], np.float32)
    below_label = np.full(w, 255, np.uint8)
    for y in range(h - 1, -1, -1):
        row = label[y]
        standing = ~is_ground[y] & (row == below_label)  # the same object continues upwards
        depth[y] = np.where(is_ground[y] | ~standing, ground_depth[y], below)
        below, below_label = depth[y], row
    depth[label == sky] = 0.0
    return depth
