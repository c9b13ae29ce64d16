"""Frame sources for ``edgeseg run``: an image folder, a video file, a camera, a GStreamer pipeline, a stream URL.

``open_source(spec)`` reads one string:

==============================  =====================================================================
``DIR``                         every image in the folder (sorted; jpg, png, bmp); unreadable files skipped
``FILE.mp4`` (avi, mkv, mov…)   a video file, decoded with OpenCV
``camera:N`` or ``N``           camera index N (V4L2 on Linux)
``gst:PIPELINE``                a GStreamer pipeline ending in ``appsink`` (OpenCV built with GStreamer),
                                e.g. a Jetson CSI camera: see :data:`JETSON_CSI_EXAMPLE`
``rtsp://…``, ``http(s)://…``   a network stream (FFmpeg)
==============================  =====================================================================

Every source yields :class:`Frame` objects (RGB uint8, numbered from 0 in decode order; a capture source opened
with ``bgr=True`` hands OpenCV's BGR frames on untouched, for a bundle exported with ``--frame-format bgr``) and
counts what it had to skip in ``dropped``. For an RGB-D model a folder source takes ``depth_dir``: each frame then
carries the depth map of the same file stem (16-bit PNG in mm or ``.npy`` in m, see :mod:`edgeseg.data.depth`).
A live source (camera, GStreamer, stream: ``live`` is True) that stops delivering is reopened with
exponential back-off; after ``max_reopen`` failed tries it gives up with a clear error, and ``interrupt()`` (a run
that stops) cuts the back-off short. ``live`` is also what ``edgeseg run`` takes by default for ``--live``
(keep only the newest frame): on for cameras and streams, off for files and folders. OpenCV is needed for
everything but folders (``pip install edgeseg[camera]``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".h265")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "rtmp://")
JETSON_CSI_EXAMPLE = (
    "gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1 ! "
    "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=2"
)


@dataclass
class Frame:
    index: int  # position among the frames delivered (skipped frames take no number)
    image: np.ndarray  # H×W×3 uint8 RGB (BGR when ``bgr``)
    name: str  # file name, or the frame number as text
    depth: np.ndarray | None = None  # float32 H×W metres, for RGB-D models
    bgr: bool = False  # the image's channels are in OpenCV's order

    def in_order(self, bgr: bool) -> np.ndarray:
        """The image in RGB, or in BGR with ``bgr`` (flipped only when the frame has the other order)."""
        return self.image if self.bgr == bgr else np.ascontiguousarray(self.image[:, :, ::-1])


def cv2_module():
    try:
        import cv2
    except ImportError as exc:
        raise EdgesegError("video, camera and stream sources need OpenCV: pip install edgeseg[camera]") from exc
    return cv2


class FrameSource:
    """Base class: iterate for frames, ``close()`` when done (also a context manager)."""

    live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0
        self.fps: float | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        """Ask a source waiting to reopen to give up now (called from another thread when a run stops)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FolderSource(FrameSource):
    """The images of a folder in name order; files that will not decode are counted and skipped."""

    def __init__(self, folder: str | Path, depth_dir: str | Path | None = None) -> None:
        super().__init__(str(folder))
        self.folder = Path(folder)
        self.depth_dir = Path(depth_dir) if depth_dir is not None else None
        if self.depth_dir is not None and not self.depth_dir.is_dir():
            raise EdgesegError(f"depth folder {self.depth_dir} not found")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise EdgesegError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")

    def __iter__(self) -> Iterator[Frame]:
        from edgeseg.data.base import read_image

        index = 0
        for path in self.files:
            try:
                image = read_image(path)
            except EdgesegError as exc:
                self.dropped += 1
                log.warning("skipping %s: %s", path.name, exc)
                continue
            depth = None
            if self.depth_dir is not None:
                from edgeseg.data.depth import find_depth, read_depth

                depth = read_depth(find_depth(self.depth_dir, path.stem))
                if depth.shape != image.shape[:2]:
                    raise EdgesegError(f"depth map of {path.name} is {depth.shape[1]}x{depth.shape[0]}, the "
                                       f"image {image.shape[1]}x{image.shape[0]}")
            yield Frame(index, image, path.name, depth)
            index += 1


class CaptureSource(FrameSource):
    """Frames from an OpenCV ``VideoCapture`` made by ``opener``.

    A file ends at its last frame; a frame in the middle that fails is skipped (up to ``max_bad_frames`` in a
    row). A live source that fails is reopened after 0.5, 1, 2, 4... s (at most ``max_backoff``), up to
    ``max_reopen`` times in a row before giving up."""

    def __init__(self, name: str, opener: Callable[[], Any], *, live: bool, max_reopen: int = 5,
                 max_backoff: float = 8.0, max_bad_frames: int = 10, sleep: Callable[[float], object] | None = None,
                 bgr: bool = False):
        super().__init__(name)
        self.bgr = bgr  # hand frames on in OpenCV's BGR order (no conversion)
        self.opener, self.live, self.max_reopen = opener, live, max_reopen
        self.interrupted = threading.Event()
        self.max_backoff, self.max_bad_frames = max_backoff, max_bad_frames
        self.sleep = sleep if sleep is not None else self.interrupted.wait  # a back-off interrupt() ends at once
        self.reopened = 0
        self.capture = self._open()
        fps = float(self.capture.get(5) or 0)  # cv2.CAP_PROP_FPS == 5
        self.fps = fps if 0 < fps < 1000 else None

    def _open(self):
        capture = self.opener()
        if capture is None or not capture.isOpened():
            raise EdgesegError(f"cannot open source {self.name}")
        return capture

    def _frames_left(self) -> bool:
        total, position = self.capture.get(7), self.capture.get(1)  # FRAME_COUNT, POS_FRAMES
        return bool(total and position < total)

    def _reopen(self) -> bool:
        delay = 0.5
        for attempt in range(1, self.max_reopen + 1):
            log.warning("%s stopped delivering frames; reopening in %.1f s (try %d of %d)", self.name, delay,
                        attempt, self.max_reopen)
            self.sleep(delay)
            if self.interrupted.is_set():
                return False
            self.capture.release()
            try:
                self.capture = self._open()
            except EdgesegError:
                delay = min(2 * delay, self.max_backoff)
                continue
            self.reopened += 1
            return True
        return False

    def __iter__(self) -> Iterator[Frame]:
        index, bad = 0, 0
        while True:
            ok, bgr = self.capture.read()
            if ok and bgr is not None and bgr.ndim == 3:
                bad = 0
                image = bgr if self.bgr else np.ascontiguousarray(bgr[:, :, ::-1])
                yield Frame(index, image, str(index), bgr=self.bgr)
                index += 1
                continue
            if self.live:
                if not self._reopen():
                    if self.interrupted.is_set():
                        return
                    raise EdgesegError(f"{self.name} dropped out and did not come back after {self.max_reopen} "
                                       f"tries")
                continue
            if self._frames_left() and bad < self.max_bad_frames:
                bad += 1
                self.dropped += 1
                continue
            return

    def interrupt(self) -> None:
        self.interrupted.set()

    def close(self) -> None:
        self.capture.release()


def _capture_opener(target, api: int | None = None) -> Callable[[], Any]:
    cv2 = cv2_module()
    return lambda: cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)


def open_source(spec: str, depth_dir: str | Path | None = None, **options) -> FrameSource:
    """A source from its spec string (see the module docstring); a missing file or folder is a clear error.
    ``depth_dir`` (RGB-D models) goes with a folder source only; ``bgr=True`` keeps a capture's BGR frames as
    they are (folders always give RGB)."""
    text = spec.strip()
    if depth_dir is not None:
        if not Path(text).is_dir():
            raise EdgesegError("--depth pairs depth maps with an image folder source; videos, cameras and streams "
                               "carry no depth")
        return FolderSource(text, depth_dir)
    if text.startswith("gst:"):
        cv2 = cv2_module()
        return CaptureSource(text, _capture_opener(text[4:], cv2.CAP_GSTREAMER), live=True, **options)
    if text.lower().startswith(STREAM_PREFIXES):
        cv2 = cv2_module()
        return CaptureSource(text, _capture_opener(text, cv2.CAP_FFMPEG), live=True, **options)
    camera = text[len("camera:"):] if text.startswith("camera:") else text
    if camera.isdigit():
        return CaptureSource(f"camera {camera}", _capture_opener(int(camera)), live=True, **options)
    path = Path(text)
    if path.is_dir():
        return FolderSource(path)  # RGB frames (options such as bgr are a capture's)
    if not path.exists():
        raise EdgesegError(f"source {spec!r} not found (a folder, a video file, camera:N, gst:PIPELINE or a URL)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise EdgesegError(f"{path} is one image; give its folder as the source")
    return CaptureSource(str(path), _capture_opener(str(path)), live=False, **options)
