"""Model metadata that travels with weights and bundles (classes, palette, normalisation, input size).

Pure Python so the runtime can read it without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from edgeseg.errors import EdgesegError

# Cityscapes' 19 training classes and official palette (cityscapesScripts labels.py).
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255


def voc_colormap(num_classes: int, start: int = 0) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour map (the bits of the index spread over R, G, B), entries ``start..``."""
    colours = []
    for index in range(start, start + num_classes):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours.append((r, g, b))
    return colours


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Cityscapes colours first, then VOC's colour map for any further classes."""
    palette = list(CITYSCAPES_PALETTE[:num_classes])
    return palette + voc_colormap(num_classes - len(palette), start=len(palette))


def default_classes(num_classes: int) -> list[str]:
    """Cityscapes names when the count is 19, ``class_<i>`` otherwise."""
    if num_classes == len(CITYSCAPES_CLASSES):
        return list(CITYSCAPES_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


@dataclass
class ModelMeta:
    """What a deployed model needs besides its weights: label names, colours, preprocessing, deploy size."""

    classes: list[str]
    palette: list[tuple[int, int, int]]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: tuple[int, int] = (512, 1024)
    ignore_index: int = IGNORE_INDEX
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def default(cls, num_classes: int, input_size: tuple[int, int] = (512, 1024)) -> ModelMeta:
        return cls(classes=default_classes(num_classes), palette=default_palette(num_classes),
                   input_size=tuple(input_size))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["palette"] = [list(c) for c in self.palette]
        d["mean"], d["std"], d["input_size"] = list(self.mean), list(self.std), list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelMeta:
        """Rebuild from :meth:`to_dict`'s output; a malformed entry raises :class:`EdgesegError` naming it."""
        if not isinstance(d, dict):
            raise EdgesegError(f"meta is not a mapping (got {type(d).__name__})")
        classes = d.get("classes")
        if (not isinstance(classes, (list, tuple)) or not classes
                or not all(isinstance(c, str) and c for c in classes)):
            raise EdgesegError("meta: classes is not a list of class names")
        palette = d.get("palette")
        if not isinstance(palette, (list, tuple)) or not all(_is_colour(c) for c in palette):
            raise EdgesegError("meta: palette is not a list of R, G, B colours (whole numbers 0-255)")
        if len(palette) != len(classes):
            raise EdgesegError(f"meta: palette has {len(palette)} colours for {len(classes)} classes")
        mean, std = d.get("mean", IMAGENET_MEAN), d.get("std", IMAGENET_STD)
        for name, value in (("mean", mean), ("std", std)):
            if not _numbers(value, 3) or (name == "std" and min(value) <= 0):
                raise EdgesegError(f"meta: {name} is not three finite numbers{' above 0' if name == 'std' else ''}")
        input_size = d.get("input_size", (512, 1024))
        if not _numbers(input_size, 2) or not all(isinstance(v, int) and v >= 1 for v in input_size):
            raise EdgesegError("meta: input_size is not two whole numbers (height, width)")
        ignore_index = d.get("ignore_index", IGNORE_INDEX)
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or not 0 <= ignore_index <= 255:
            raise EdgesegError(f"meta: ignore_index is not a label value 0-255 (got {ignore_index!r})")
        extra = d.get("extra", {})
        if not isinstance(extra, dict):
            raise EdgesegError("meta: extra is not a mapping")
        return cls(classes=list(classes), palette=[tuple(c) for c in palette],
                   mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                   input_size=tuple(input_size), ignore_index=ignore_index, extra=dict(extra))


def _numbers(value, count: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def _is_colour(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value))
