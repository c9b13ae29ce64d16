"""Datasets as plain numpy sources: ``ds[i] -> (image uint8 H×W×3 RGB, label uint8 H×W)``.

No torch here: calibration readers and benchmarks on a Jetson use the same classes as training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX, default_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file it cannot decode, a decompression bomb (a small file declaring a huge image)
    included: every image read in edgeseg turns these into one :class:`EdgesegError`."""
    from PIL import Image, UnidentifiedImageError

    return OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, MemoryError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 H×W×3 RGB; an unreadable file is an :class:`EdgesegError`."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except _decode_errors() as exc:
        raise EdgesegError(f"cannot decode image {path}: {exc}") from exc


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Decode a label PNG to uint8 H×W of raw values (palette PNGs give their indices)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise EdgesegError(f"label {path} is {im.mode}, expected a single-channel or palette PNG")
            arr = np.asarray(im)
    except _decode_errors() as exc:
        raise EdgesegError(f"cannot decode label {path}: {exc}") from exc
    if arr.max(initial=0) > 255:
        raise EdgesegError(f"label {path} has values above 255")
    return arr.astype(np.uint8, copy=False)


def require_dir(path: Path, dataset: str, expected: str) -> Path:
    if not path.is_dir():
        raise EdgesegError(f"{dataset}: {path} not found (expected {expected})")
    return path


class SegmentationSource:
    """A dataset split: images with labels in ``[0, num_classes)`` or ``ignore_index``."""

    name = "dataset"
    depth_dir: Path | None = None  # a folder of depth maps paired by sample id (see edgeseg.data.depth)

    def __init__(self, classes: Sequence[str], palette: Sequence[tuple[int, int, int]] | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.classes = list(classes)
        self.palette = [tuple(c) for c in (palette or default_palette(len(self.classes)))]
        self.ignore_index = ignore_index

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def rgbd(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image, label, depth float32 H×W metres)`` for RGB-D models; sources without depth refuse."""
        if self.depth_dir is None:
            raise EdgesegError(f"{self.name} has no depth maps: RGB-D models need the synthetic scenes or a "
                               f"folder dataset with a depth folder (folder:IMAGES,LABELS,depth=DEPTH)")
        from edgeseg.data.depth import find_depth, read_depth

        image, label = self[index]
        depth = read_depth(find_depth(self.depth_dir, self.sample_id(index)))
        if depth.shape != label.shape:
            raise EdgesegError(f"{self.name}: the depth map of {self.sample_id(index)} is "
                               f"{depth.shape[1]}x{depth.shape[0]}, its image {label.shape[1]}x{label.shape[0]}")
        return image, label, depth

    def sample_id(self, index: int) -> str:
        return str(index)


class FilePairSource(SegmentationSource):
    """Image/label file pairs with an optional lookup table mapping raw label values to train ids."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], classes: Sequence[str], *, name: str,
                 palette=None, label_map: np.ndarray | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(classes, palette, ignore_index)
        if not pairs:
            raise EdgesegError(f"{name}: no image/label pairs found")
        self.pairs = list(pairs)
        self.name = name
        self.label_map = label_map

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if self.label_map is not None:
            label = self.label_map[label]
        if label.shape != image.shape[:2]:
            raise EdgesegError(f"{self.name}: {label_path} is {label.shape[1]}x{label.shape[0]}, its image "
                               f"{image_path} is {image.shape[1]}x{image.shape[0]}")
        self.check_label(label, label_path)
        return image, label

    def check_label(self, label: np.ndarray, where: object) -> None:
        """Every value a class index or the ignore index: anything else would crash training mid-run or be
        scored silently."""
        bad = (label >= self.num_classes) & (label != self.ignore_index)
        if bad.any():
            value = int(label[bad][0])
            raise EdgesegError(f"{self.name}: {where} has label value {value}, which is not a class "
                               f"(0-{self.num_classes - 1}) nor the ignore value {self.ignore_index}")

    def sample_id(self, index: int) -> str:
        return self.pairs[index][0].stem


def pair_by_stem(images: Sequence[Path], labels: Sequence[Path], dataset: str,
                 image_suffix: str = "", label_suffix: str = "") -> list[tuple[Path, Path]]:
    """Match images to labels by file stem (after removing the given suffixes); every image needs a label."""
    def key(p: Path, suffix: str) -> str:
        stem = p.stem
        return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem

    by_key = {key(p, label_suffix): p for p in labels}
    pairs, missing = [], []
    for img in sorted(images):
        lab = by_key.get(key(img, image_suffix))
        (pairs.append((img, lab)) if lab is not None else missing.append(img.name))
    if missing:
        raise EdgesegError(f"{dataset}: {len(missing)} images have no label, e.g. {missing[0]}")
    return pairs


def lookup_table(mapping: dict[int, int], default: int = IGNORE_INDEX) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    return lut
