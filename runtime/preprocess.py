"""Host-side image handling shared by every backend (no torch): resizing frames to the deploy size and
predictions back to the frame size. Normalisation is not here: it is inside the deploy graph."""

from __future__ import annotations

import numpy as np
from PIL import Image

MAX_SIDE = 8192  # the largest image side any command takes (an 8K frame); more is a typo, not a camera


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×3 → uint8 ``size`` (bilinear); returned unchanged when already that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A single-channel map (uint8 labels, float32 depth) → ``size`` with nearest neighbour (never interpolated)."""
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    return np.asarray(Image.fromarray(labels).resize((w, h), Image.Resampling.NEAREST))


def to_batch(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Frames → the deploy graph's input: uint8 N×H×W×3 RGB at ``size``."""
    return np.stack([resize_image(im, size) for im in images]).astype(np.uint8, copy=False)
