"""Where ``edgeseg run`` puts its results: an overlay video, label PNGs, overlay images, a window, or nowhere.

``open_sink(spec, palette)`` reads one string:

======================  ===============================================================================
``null``                discard (measure the pipeline alone)
``OUT.mp4`` (avi, mkv)  the frames with the labels blended over them, as a video (OpenCV); written to a
                        temporary name and renamed when complete
``labels:DIR``          one palette PNG of class indices per frame (``DIR/<frame>.png``)
``overlays:DIR``        one JPEG per frame with the labels blended over it
``window``              an OpenCV window (needs a display); closing it or pressing q stops the run
======================  ===============================================================================
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.runtime.overlay import blend, save_label_png
from edgeseg.runtime.sources import VIDEO_SUFFIXES, Frame, cv2_module

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class SinkClosed(Exception):
    """The user closed the window: the run should stop, not fail."""


class FrameSink:
    """Base class: ``write(frame, labels)`` for each frame in order, then ``close()`` (also a context manager)."""

    def __init__(self, name: str, palette) -> None:
        self.name, self.palette, self.written = name, palette, 0

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        self._write(frame, labels)
        self.written += 1

    def _write(self, frame: Frame, labels: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Stop after an error: remove anything half-written."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None or exc_type is KeyboardInterrupt:
            self.close()  # an interrupted run keeps what it wrote, complete
        else:
            self.abort()


class NullSink(FrameSink):
    def _write(self, frame: Frame, labels: np.ndarray) -> None:
        pass


class VideoSink(FrameSink):
    """Overlay video; opened at the first frame's size, renamed into place on close."""

    def __init__(self, path: str | Path, palette, fps: float | None = None) -> None:
        super().__init__(str(path), palette)
        self.path = Path(path)
        self.fps = fps or 30.0
        self.writer: Any = None
        self.size: tuple[int, int] = (0, 0)
        self.tmp: Path | None = None
        if not self.path.parent.exists():
            raise EdgesegError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        if not os.access(self.path.parent, os.W_OK):
            raise EdgesegError(f"cannot write {self.path}: folder {self.path.parent} is not writable")

    def _open(self, height: int, width: int) -> None:
        cv2 = cv2_module()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(self.path.suffix.lower(), "mp4v"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (width, height))
        if not self.writer.isOpened():
            self.abort()
            raise EdgesegError(f"OpenCV cannot write {self.path.suffix} video here (no encoder); try .avi")
        self.size = (height, width)

    def _write(self, frame: Frame, labels: np.ndarray) -> None:
        h, w = frame.image.shape[:2]
        if self.writer is None:
            self._open(h, w)
        assert self.writer is not None
        if (h, w) != self.size:
            raise EdgesegError(f"frame {frame.name} is {h}x{w}, the video is {self.size[0]}x{self.size[1]}: a video "
                               f"sink needs frames of one size (use overlays:DIR)")
        self.writer.write(np.ascontiguousarray(blend(frame.image, labels, self.palette)[:, :, ::-1]))

    def close(self) -> None:
        if self.writer is not None and self.tmp is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.tmp, self.path)
            self.tmp = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            self.tmp = None


class FolderSink(FrameSink):
    """One file per frame: label PNGs (class indices, palette colours) or overlay JPEGs."""

    def __init__(self, folder: str | Path, palette, kind: str) -> None:
        super().__init__(f"{kind}:{folder}", palette)
        self.folder, self.kind = Path(folder), kind
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgesegError(f"cannot create {self.folder}: {exc.strerror or exc}") from exc
        if not os.access(self.folder, os.W_OK):
            raise EdgesegError(f"cannot write to {self.folder}")

    def _write(self, frame: Frame, labels: np.ndarray) -> None:

        stem = Path(frame.name).stem if not frame.name.isdigit() else f"{int(frame.name):06d}"
        if self.kind == "labels":
            with atomic_path(self.folder / f"{stem}.png") as tmp:
                save_label_png(tmp, labels, self.palette)
        else:
            with atomic_path(self.folder / f"{stem}.jpg") as tmp:
                Image.fromarray(blend(frame.image, labels, self.palette)).save(tmp, format="JPEG", quality=90)


class WindowSink(FrameSink):
    """An OpenCV window showing the overlay; q or closing the window ends the run."""

    TITLE = "edgeseg"

    def __init__(self, palette) -> None:
        super().__init__("window", palette)
        self.cv2 = cv2_module()
        try:
            self.cv2.namedWindow(self.TITLE, self.cv2.WINDOW_NORMAL)
        except self.cv2.error as exc:
            raise EdgesegError("cannot open a window (no display, or OpenCV built headless); use a file sink") from exc

    def _write(self, frame: Frame, labels: np.ndarray) -> None:
        self.cv2.imshow(self.TITLE, np.ascontiguousarray(blend(frame.image, labels, self.palette)[:, :, ::-1]))
        key = self.cv2.waitKey(1) & 0xFF
        if key == ord("q") or self.cv2.getWindowProperty(self.TITLE, self.cv2.WND_PROP_VISIBLE) < 1:
            raise SinkClosed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cv2.destroyWindow(self.TITLE)


def open_sink(spec: str | None, palette, fps: float | None = None) -> FrameSink:
    text = (spec or "null").strip()
    if text == "null":
        return NullSink("null", palette)
    if text == "window":
        return WindowSink(palette)
    for kind in ("labels", "overlays"):
        if text.startswith(kind + ":"):
            return FolderSink(text[len(kind) + 1:], palette, kind)
    if Path(text).suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(text, palette, fps)
    raise EdgesegError(f"unknown sink {spec!r}: use null, window, OUT.mp4, labels:DIR or overlays:DIR")
