"""The ``frames:DIR`` sink of ``edgeseg run``: every input frame as a numbered image, to record clips on the robot.

``frames:DIR`` writes lossless PNGs, ``frames:DIR,jpg`` JPEGs (quality 95). Each run is one clip:
``DIR/clipNN_NNNNNN.png``, the clip number one above the highest already in the folder (a second recording never
writes over the first), the frame number the frame's position in the run (frames the source dropped take no
number). That is the naming ``edgeseg propagate --frames DIR`` reads: label a few frames (same names, in a
``folder:`` dataset) and propagate their labels to the frames around them.

Like ``labels:DIR``, the folder must be new, empty, or one an earlier ``frames:`` run wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path, refuse_input_overlap
from edgeseg.runtime.sinks import SINK_MARKER, FolderSink, Picture
from edgeseg.runtime.sources import Frame

KIND = "frames"
_CLIP = re.compile(r"clip(\d+)_\d+\.(?:png|jpg)")
FORMATS = {"png": ".png", "jpg": ".jpg"}


class FramesSink(FolderSink):
    """Writes the frames themselves (not the labels): ``clipNN_<frame index>`` in PNG or JPEG."""

    def __init__(self, folder: str | Path, palette, image_format: str = "png") -> None:
        super().__init__(folder, palette, KIND)
        if image_format not in FORMATS:
            raise EdgesegError(f"frames:{folder}: unknown format {image_format!r}; use frames:DIR or frames:DIR,jpg")
        self.suffix = FORMATS[image_format]
        marker = self.folder / SINK_MARKER
        if marker.is_file():
            try:
                kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
            except (OSError, ValueError, AttributeError):
                kind = None
            if kind != KIND:
                raise EdgesegError(f"{folder} holds the output of another sink ({kind or 'unknown'}); give frames: "
                                   f"an empty or new folder")
        taken = [int(m.group(1)) for p in (self.folder.iterdir() if self.folder.is_dir() else ())
                 if (m := _CLIP.fullmatch(p.name))]
        self.clip = max(taken, default=0) + 1

    def output_name(self, frame: Frame) -> str:
        return f"clip{self.clip:02d}_{frame.index:06d}{self.suffix}"

    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        if not self.opened:
            self._open()
        with atomic_path(self.folder / self.output_name(frame)) as tmp:
            image = Image.fromarray(frame.in_order(bgr=False))
            if self.suffix == ".png":
                image.save(tmp, format="PNG")
            else:
                image.save(tmp, format="JPEG", quality=95)


def open_frames_sink(spec: str, palette, inputs=()) -> FramesSink:
    """The sink for ``frames:DIR[,jpg]`` (``spec`` without the ``frames:`` prefix); refused when it would write
    into, over or around one of the run's ``inputs``."""
    folder, image_format = spec, "png"
    for name in FORMATS:
        if spec.endswith("," + name):
            folder, image_format = spec[:-len(name) - 1], name
    if not folder:
        raise EdgesegError("frames: needs a folder, e.g. frames:out/frames")
    refuse_input_overlap(folder, inputs)
    return FramesSink(folder, palette, image_format)
