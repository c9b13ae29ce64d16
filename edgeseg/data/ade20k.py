"""ADE20K (SceneParsing, ``ADEChallengeData2016``): ``images/<training|validation>/*.jpg`` and
``annotations/<...>/*.png``; label 0 ("other") is ignored and 1..150 become 0..149."""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.base import FilePairSource, lookup_table, pair_by_stem, require_dir
from edgeseg.meta import voc_colormap

CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier",
    "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}


def open_ade20k(root: Path, split: str) -> FilePairSource:
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    folder = SPLITS.get(split, split)
    images_dir = require_dir(root / "images" / folder, "ade20k", f"images/{folder}/*.jpg")
    labels_dir = require_dir(root / "annotations" / folder, "ade20k", f"annotations/{folder}/*.png")
    pairs = pair_by_stem(sorted(images_dir.glob("*.jpg")), sorted(labels_dir.glob("*.png")), "ade20k")
    lut = lookup_table({raw: raw - 1 for raw in range(1, len(CLASSES) + 1)})
    return FilePairSource(pairs, CLASSES, name=f"ade20k/{split}", palette=voc_colormap(len(CLASSES), start=1),
                          label_map=lut)
