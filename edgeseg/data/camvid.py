"""CamVid in the SegNet layout: ``<split>/*.png`` images and ``<split>annot/*.png`` labels (0-10, void 11)."""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.base import IMAGE_SUFFIXES, FilePairSource, lookup_table, pair_by_stem, require_dir

CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian",
           "bicyclist")
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
VOID = 11


def open_camvid(root: Path, split: str) -> FilePairSource:
    images_dir = require_dir(root / split, "camvid", f"{split}/ with images (SegNet layout)")
    labels_dir = require_dir(root / f"{split}annot", "camvid", f"{split}annot/ with label PNGs (SegNet layout)")
    images = [p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    labels = list(labels_dir.glob("*.png"))
    return FilePairSource(pair_by_stem(images, labels, "camvid"), CLASSES, name=f"camvid/{split}",
                          palette=PALETTE, label_map=lookup_table({i: i for i in range(len(CLASSES))}))
