"""Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine/<split>/<city>/*_gtFine_*.png``.

Uses ``*_labelTrainIds.png`` when present (made by cityscapesScripts' createTrainIdLabelImgs), otherwise maps
``*_labelIds.png`` to the 19 train ids with the official table.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.base import FilePairSource, lookup_table, pair_by_stem, require_dir
from edgeseg.errors import EdgesegError
from edgeseg.meta import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

# labelIds -> trainIds (cityscapesScripts helpers/labels.py); everything else is ignored.
LABEL_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                     26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def open_cityscapes(root: Path, split: str) -> FilePairSource:
    images_dir = require_dir(root / "leftImg8bit" / split, "cityscapes", "leftImg8bit/<split>/<city>/*.png")
    labels_dir = require_dir(root / "gtFine" / split, "cityscapes", "gtFine/<split>/<city>/*_gtFine_*.png")
    images = sorted(images_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise EdgesegError(f"cityscapes: no */*_leftImg8bit.png under {images_dir}")
    train_ids = sorted(labels_dir.glob("*/*_gtFine_labelTrainIds.png"))
    if train_ids:
        pairs = pair_by_stem(images, train_ids, "cityscapes", "_leftImg8bit", "_gtFine_labelTrainIds")
        label_map = None
    else:
        label_ids = sorted(labels_dir.glob("*/*_gtFine_labelIds.png"))
        if not label_ids:
            raise EdgesegError(f"cityscapes: no *_gtFine_labelTrainIds.png or *_gtFine_labelIds.png under "
                               f"{labels_dir}")
        pairs = pair_by_stem(images, label_ids, "cityscapes", "_leftImg8bit", "_gtFine_labelIds")
        label_map = lookup_table(LABEL_TO_TRAIN_ID)
    return FilePairSource(pairs, CITYSCAPES_CLASSES, name=f"cityscapes/{split}", palette=CITYSCAPES_PALETTE,
                          label_map=label_map)
