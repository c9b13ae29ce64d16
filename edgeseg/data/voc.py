"""Pascal VOC 2012: ``JPEGImages/``, ``SegmentationClass/`` (palette PNGs, 255 = boundary), and the split
lists in ``ImageSets/Segmentation/<split>.txt``. With the SBD augmentation installed the usual way
(``SegmentationClassAug/`` and ``ImageSets/Segmentation/train_aug.txt``), ask for split ``train_aug``."""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.base import FilePairSource, require_dir
from edgeseg.errors import EdgesegError
from edgeseg.meta import voc_colormap

CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
           "tvmonitor")


def open_voc(root: Path, split: str) -> FilePairSource:
    if (root / "VOC2012").is_dir():  # accept VOCdevkit/ as well as VOCdevkit/VOC2012/
        root = root / "VOC2012"
    images_dir = require_dir(root / "JPEGImages", "voc", "JPEGImages/*.jpg")
    label_dir_name = "SegmentationClassAug" if split == "train_aug" else "SegmentationClass"
    labels_dir = require_dir(root / label_dir_name, "voc", f"{label_dir_name}/*.png")
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise EdgesegError(f"voc: {list_file} not found (split list ImageSets/Segmentation/<split>.txt)")
    ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    pairs = []
    for image_id in ids:
        image, label = images_dir / f"{image_id}.jpg", labels_dir / f"{image_id}.png"
        if not image.is_file() or not label.is_file():
            missing = image if not image.is_file() else label
            raise EdgesegError(f"voc: {missing} listed in {list_file.name} is missing")
        pairs.append((image, label))
    return FilePairSource(pairs, CLASSES, name=f"voc/{split}", palette=voc_colormap(len(CLASSES)))
