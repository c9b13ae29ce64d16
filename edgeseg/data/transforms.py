"""Training augmentation on numpy arrays (image uint8 H×W×3, label uint8 H×W); ignore index 255 throughout.

Each transform takes ``(image, label, rng)`` and returns ``(image, label)``; ``rng`` is a
``numpy.random.Generator`` so a data-loader worker's stream is reproducible. RGB-D samples pass ``depth=``
(float32 H×W metres) too and get ``(image, label, depth)`` back: the depth follows the geometry (nearest
neighbour, padded with 0 = no measurement) and is left alone by the colour jitter.

Any other per-pixel maps ride along as ``side=`` (a dict of name → H×W array) and come back as the last item of
the tuple, a dict of the transformed maps: they follow the geometry exactly as the depth does (nearest
neighbour, padded with 0), so a validity map of ones comes out 0 where the crop padded, and a map of source
coordinates says where every output pixel came from (see :mod:`edgeseg.data.weak`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.data.geometry import resize_image, resize_labels
from edgeseg.meta import IGNORE_INDEX


def _result(image, label, depth, side=None):
    out = (image, label) if depth is None else (image, label, depth)
    return out if side is None else (*out, side)


def _follow(depth, side, fn):
    """``fn`` applied to the depth and to every side map (``None`` stays ``None``)."""
    return (None if depth is None else fn(depth),
            None if side is None else {name: fn(value) for name, value in side.items()})


def resize_pair(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear for the image, nearest for the label (labels are never interpolated)."""
    return resize_image(image, size), resize_labels(label, size)


@dataclass
class RandomScale:
    scales: tuple[float, float] = (0.5, 2.0)

    def __call__(self, image, label, rng, depth=None, side=None):
        s = rng.uniform(*self.scales)
        h, w = label.shape
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return _result(*resize_pair(image, label, size), *_follow(depth, side, lambda a: resize_labels(a, size)))


@dataclass
class RandomCrop:
    """Crop ``size``; pads first when the sample is smaller (image with 0, label with ignore)."""

    size: tuple[int, int]
    ignore_index: int = IGNORE_INDEX

    def __call__(self, image, label, rng, depth=None, side=None):
        ch, cw = self.size
        h, w = label.shape
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=self.ignore_index)
            depth, side = _follow(depth, side, lambda a: np.pad(a, ((0, ph), (0, pw))))
            h, w = label.shape
        y, x = self.origin(label, rng)
        crop = (slice(y, y + ch), slice(x, x + cw))
        return _result(image[crop], label[crop], *_follow(depth, side, lambda a: a[crop]))

    def origin(self, label, rng) -> tuple[int, int]:
        """Top-left corner ``(y, x)`` of the crop in ``label`` (already padded to at least the crop size)."""
        (ch, cw), (h, w) = self.size, label.shape
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, image, label, rng, depth=None, side=None):
        if rng.random() < self.p:
            return _result(image[:, ::-1], label[:, ::-1], *_follow(depth, side, lambda a: a[:, ::-1]))
        return _result(image, label, depth, side)


@dataclass
class ColorJitter:
    """Brightness, contrast and saturation factors drawn from ``[1 - x, 1 + x]``."""

    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3

    def __call__(self, image, label, rng, depth=None, side=None):
        img = image.astype(np.float32)
        img *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        grey = img.mean(axis=2, keepdims=True)
        img = (img - grey) * rng.uniform(1 - self.saturation, 1 + self.saturation) + grey
        return _result(np.clip(img, 0, 255).astype(np.uint8), label, depth, side)


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, label, rng, depth=None, side=None):
        for t in self.transforms:
            image, label, *rest = t(image, label, rng, depth=depth, side=side)
            depth = rest[0] if depth is not None else None
            side = rest[-1] if side is not None else None
        return _result(np.ascontiguousarray(image), np.ascontiguousarray(label),
                       *_follow(depth, side, np.ascontiguousarray))


def train_transforms(crop: tuple[int, int], scales: tuple[float, float] = (0.5, 2.0),
                     jitter: float = 0.3, class_uniform: float = 0.0) -> Compose:
    """The usual recipe: random scale, crop with ignore padding, flip, colour jitter. ``class_uniform``: the
    fraction of crops centred on a class drawn uniformly (:class:`~edgeseg.data.class_crop.ClassUniformCrop`)."""
    from edgeseg.data.class_crop import ClassUniformCrop

    cropper = ClassUniformCrop(crop, fraction=class_uniform) if class_uniform else RandomCrop(crop)
    steps = [RandomScale(scales), cropper, RandomHorizontalFlip()]
    if jitter:
        steps.append(ColorJitter(jitter, jitter, jitter))
    return Compose(steps)
