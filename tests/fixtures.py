"""Tiny datasets written in each real on-disk layout (a few 8×12 images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 8, 12


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _label(path: Path, values, palette: bool = False) -> np.ndarray:
    """A label PNG: greyscale, or a palette PNG (as VOC ships) whose indices are the labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.resize(np.asarray(values, np.uint8), (H, W))
    im = Image.fromarray(arr)
    if palette:
        im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])  # L -> P, indices kept
        assert im.mode == "P"
    im.save(path)
    return arr


def make_cityscapes(root: Path, train_ids: bool = True) -> None:
    for split, city, n in (("train", "aachen", 2), ("val", "lindau", 1)):
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            _image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", i)
            if train_ids:
                _label(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", [0, 1, 18, 255])
            else:  # raw ids: 7 road -> 0, 26 car -> 13, 0 unlabeled -> ignore, 33 bicycle -> 18
                _label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", [7, 26, 0, 33])


def make_camvid(root: Path) -> None:
    for split in ("train", "val", "test"):
        for i in range(2):
            _image(root / split / f"0001TP_{i:06d}.png", i)
            _label(root / f"{split}annot" / f"0001TP_{i:06d}.png", [0, 3, 10, 11])


def make_voc(root: Path) -> None:
    base = root / "VOC2012"
    ids = ["2007_000032", "2007_000039"]
    for i, image_id in enumerate(ids):
        _image(base / "JPEGImages" / f"{image_id}.jpg", i)
        _label(base / "SegmentationClass" / f"{image_id}.png", [0, 15, 20, 255], palette=True)
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text(ids[0] + "\n")
    (sets / "val.txt").write_text(ids[1] + "\n")


def make_ade20k(root: Path) -> None:
    base = root / "ADEChallengeData2016"
    for split in ("training", "validation"):
        for i in range(2):
            _image(base / "images" / split / f"ADE_{split[:5]}_{i:08d}.jpg", i)
            _label(base / "annotations" / split / f"ADE_{split[:5]}_{i:08d}.png", [0, 1, 150, 13])


def make_folder(root: Path) -> tuple[Path, Path]:
    for i in range(3):
        _image(root / "images" / f"frame{i}.jpg", i)
        _label(root / "labels" / f"frame{i}.png", [0, 1, 2, 255])
    (root / "classes.txt").write_text("floor 10 20 30\nwall\n# a comment\nperson 255 0 0\n")
    return root / "images", root / "labels"
