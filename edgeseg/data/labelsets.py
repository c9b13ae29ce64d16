"""The label sets of the datasets published models are trained on: class names, palette and the usual deploy
size, by dataset name. Cityscapes, CamVid, Pascal VOC and ADE20K come from their loaders; COCO-Stuff (the 171
classes of COCO-Stuff-164k: 80 things, 91 stuff) and NYUDv2 (the 40-class set of Gupta et al.) live here, as
no loader reads them yet. Pure Python, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.data import ade20k, camvid, voc
from edgeseg.errors import EdgesegError
from edgeseg.meta import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, voc_colormap

COCO_THINGS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
COCO_STUFF = (
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel",
    "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
NYUV2_40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
    "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture",
    "otherprop",
)


@dataclass(frozen=True)
class LabelSet:
    """A dataset's classes (in training-id order), their colours, and the input size models deploy at."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _set(name, classes, palette, size) -> LabelSet:
    return LabelSet(name, tuple(classes), tuple(tuple(c) for c in palette), tuple(size))


LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (
    _set("cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, (1024, 2048)),
    _set("camvid", camvid.CLASSES, camvid.PALETTE, (720, 960)),
    _set("voc", voc.CLASSES, voc_colormap(len(voc.CLASSES)), (512, 512)),
    _set("ade20k", ade20k.CLASSES, voc_colormap(len(ade20k.CLASSES), start=1), (512, 512)),
    _set("coco-stuff", COCO_THINGS + COCO_STUFF, voc_colormap(len(COCO_THINGS) + len(COCO_STUFF), start=1),
         (640, 640)),
    _set("nyuv2", NYUV2_40, voc_colormap(len(NYUV2_40), start=1), (480, 640)),
)}


def label_set(name: str) -> LabelSet:
    """The label set called ``name``; an unknown one is an :class:`EdgesegError` listing the known ones."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise EdgesegError(f"unknown dataset {name!r}; known: {', '.join(LABEL_SETS)}") from None
