"""Training augmentation on numpy arrays (image uint8 H×W×3, label uint8 H×W); ignore index 255 throughout.

Each transform takes ``(image, label, rng)`` and returns ``(image, label)``; ``rng`` is a
``numpy.random.Generator`` so a data-loader worker's stream is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.meta import IGNORE_INDEX
from edgeseg.runtime.preprocess import resize_image, resize_labels


def resize_pair(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear for the image, nearest for the label (labels are never interpolated)."""
    return resize_image(image, size), resize_labels(label, size)


@dataclass
class RandomScale:
    scales: tuple[float, float] = (0.5, 2.0)

    def __call__(self, image, label, rng):
        s = rng.uniform(*self.scales)
        h, w = label.shape
        return resize_pair(image, label, (max(1, round(h * s)), max(1, round(w * s))))


@dataclass
class RandomCrop:
    """Crop ``size``; pads first when the sample is smaller (image with 0, label with ignore)."""

    size: tuple[int, int]
    ignore_index: int = IGNORE_INDEX

    def __call__(self, image, label, rng):
        ch, cw = self.size
        h, w = label.shape
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=self.ignore_index)
            h, w = label.shape
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, image, label, rng):
        if rng.random() < self.p:
            return image[:, ::-1], label[:, ::-1]
        return image, label


@dataclass
class ColorJitter:
    """Brightness, contrast and saturation factors drawn from ``[1 - x, 1 + x]``."""

    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3

    def __call__(self, image, label, rng):
        img = image.astype(np.float32)
        img *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        grey = img.mean(axis=2, keepdims=True)
        img = (img - grey) * rng.uniform(1 - self.saturation, 1 + self.saturation) + grey
        return np.clip(img, 0, 255).astype(np.uint8), label


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, label, rng):
        for t in self.transforms:
            image, label = t(image, label, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


def train_transforms(crop: tuple[int, int], scales: tuple[float, float] = (0.5, 2.0),
                     jitter: float = 0.3) -> Compose:
    """The usual recipe: random scale, crop with ignore padding, flip, colour jitter."""
    steps = [RandomScale(scales), RandomCrop(crop), RandomHorizontalFlip()]
    if jitter:
        steps.append(ColorJitter(jitter, jitter, jitter))
    return Compose(steps)
