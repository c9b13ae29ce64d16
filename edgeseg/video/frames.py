"""Recorded frames around labelled ones: the folder layout ``edgeseg propagate --frames DIR`` reads.

A labelled image and its neighbouring video frames are paired by **name**. The frame number is the last group of
digits in the file stem that stands alone between separators (``_``, ``-``, ``.``, or the start or end of the
stem); the neighbours have the same name with that number changed by ±k, written with the same number of digits::

    labelled image (in the dataset)        frames folder (any depth of subfolders, .png / .jpg / .jpeg / .bmp)
    frame_000120.png                       frame_000117.png ... frame_000119.png, frame_000121.png ... frame_000123.png
    aachen_000000_000019_leftImg8bit.png   aachen/aachen_000000_000018_leftImg8bit.png, ..._000020_leftImg8bit.png

The first is what the ``frames:DIR`` sink of ``edgeseg run`` writes (``clipNN_NNNNNN.png``); the second is the
Cityscapes convention (``leftImg8bit_sequence``: give its split folder, e.g. ``--frames .../leftImg8bit_sequence/
train``). Digits glued to letters (``leftImg8bit``, ``clip02``) are part of the name, not the frame number. A
missing neighbour ends the propagation in that direction (counted, not fatal).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgeseg.data.base import IMAGE_SUFFIXES, read_image
from edgeseg.errors import EdgesegError
from edgeseg.video.clips import Clip

_NUMBER = re.compile(r"(?:^|(?<=[_\-.]))(\d+)(?=$|[_\-.])")


def frame_number(stem: str) -> re.Match | None:
    """The frame number's match in ``stem`` (the last stand-alone group of digits), or None."""
    matches = list(_NUMBER.finditer(stem))
    return matches[-1] if matches else None


def neighbour_stem(stem: str, offset: int) -> str | None:
    """The stem of the frame ``offset`` frames from ``stem`` (None when there is no frame number or the number
    would be negative)."""
    match = frame_number(stem)
    if match is None:
        return None
    number = int(match.group(1)) + offset
    if number < 0:
        return None
    return f"{stem[:match.start(1)]}{number:0{len(match.group(1))}d}{stem[match.end(1):]}"


class FrameIndex:
    """Every image under a folder, by file stem. Two files of one stem make that stem ambiguous (refused when
    asked for)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EdgesegError(f"--frames: folder {self.folder} not found")
        self.paths: dict[str, Path] = {}
        self.ambiguous: dict[str, list[Path]] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if path.stem in self.paths:
                self.ambiguous.setdefault(path.stem, [self.paths[path.stem]]).append(path)
            else:
                self.paths[path.stem] = path
        if not self.paths:
            raise EdgesegError(f"--frames: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")

    def find(self, stem: str) -> Path | None:
        if stem in self.ambiguous:
            a, b = self.ambiguous[stem][:2]
            raise EdgesegError(f"--frames: two frames named {stem}: {a} and {b}; keep one")
        return self.paths.get(stem)


class FolderClip(Clip):
    """The labelled ``image`` (offset 0, from the dataset) and the recorded frames around it, read on demand."""

    def __init__(self, index: FrameIndex, stem: str, image: np.ndarray) -> None:
        if frame_number(stem) is None:
            raise EdgesegError(f"--frames: {stem} has no frame number (expected a name such as {stem}_000120: the "
                               f"last group of digits between underscores)")
        self.index, self.stem, self.image = index, stem, image
        self.name = stem
        self._cache: dict[int, np.ndarray] = {}

    def path(self, offset: int) -> Path | None:
        """The file of the frame at ``offset`` (None when it is not in the folder)."""
        stem = neighbour_stem(self.stem, offset)
        return None if stem is None else self.index.find(stem)

    def has(self, offset: int) -> bool:
        return offset == 0 or self.path(offset) is not None

    def frame(self, offset: int) -> np.ndarray:
        if offset == 0:
            return self.image
        if offset not in self._cache:
            path = self.path(offset)
            if path is None:
                raise EdgesegError(f"--frames: no frame {offset:+d} of {self.stem} in {self.index.folder}")
            self._cache[offset] = read_image(path)
        return self._cache[offset]
