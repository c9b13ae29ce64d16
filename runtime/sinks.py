"""Where ``edgeseg run`` puts its results: an overlay video, label PNGs, overlay images, a window, or nowhere.

``open_sink(spec, palette)`` reads one string:

======================  ===============================================================================
``null``                discard (measure the pipeline alone)
``OUT.mp4`` (webm, ...)  the frames with the labels blended over them, as a video (OpenCV); written to a
                        temporary name and renamed when complete, in a codec browsers play where OpenCV
                        has one (:data:`CODECS`)
``labels:DIR``          one palette PNG of class indices per frame (``DIR/<frame>.png``)
``overlays:DIR``        one JPEG per frame with the labels blended over it
``frames:DIR``          the input frames themselves, numbered, to record clips (:mod:`edgeseg.runtime.frames_sink`)
``window``              an OpenCV window (needs a display); closing it or pressing q stops the run
======================  ===============================================================================

When the bundle returns an ``overlay`` (``edgeseg export --outputs labels,overlay``: palette and blend inside the
graph) the pipeline hands it to the sink with the labels and the sink writes it as it is: no host blend. Without
one the sink blends on the host (:func:`edgeseg.runtime.overlay.blend`). Videos and the window carry a class
legend along the bottom edge (:class:`edgeseg.runtime.overlay.LegendStrip`; ``legend=False`` leaves it out);
the bundle's ``legend.png`` names the colours too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.fileio import (
    atomic_path,
    check_file_target,
    clean_stale_temps,
    make_file_readable,
    os_error,
    refuse_input_overlap,
    temp_path,
    write_text_atomic,
)
from edgeseg.runtime.overlay import LegendStrip, blend, save_label_png
from edgeseg.runtime.sources import VIDEO_SUFFIXES, Frame, cv2_module

log = logging.getLogger(__name__)

# The codecs tried for each video ending, in order: the first OpenCV's build can open wins. Browsers play H.264
# (avc1) and VP9 (vp09 in MP4, VP90 in WebM; VP8 in WebM too); pip's opencv-python has no H.264 encoder
# (licensing) but has VP9, which encodes several times slower than mp4v. MPEG-4 Part 2 (mp4v) and Motion JPEG
# (an .avi) play in VLC and ffmpeg but in no browser.
CODECS = {".mp4": ("avc1", "vp09", "mp4v"), ".m4v": ("avc1", "vp09", "mp4v"), ".mov": ("avc1", "mp4v"),
          ".webm": ("VP90", "VP80"), ".mkv": ("avc1", "VP90", "mp4v"), ".avi": ("MJPG",)}
BROWSER_CODECS = {"avc1": "H.264", "vp09": "VP9", "VP90": "VP9", "VP80": "VP8"}
SINK_MARKER = ".edgeseg-sink.json"  # in a labels:/overlays: folder: edgeseg wrote what is in it


class SinkClosed(Exception):
    """The user closed the window: the run should stop, not fail."""


@dataclass(frozen=True)
class Picture:
    """A picture the deploy graph drew (``overlay``): uint8 H×W×3, in BGR when ``bgr``."""

    image: np.ndarray
    bgr: bool = False

    def in_order(self, bgr: bool) -> np.ndarray:
        return self.image if self.bgr == bgr else np.ascontiguousarray(self.image[:, :, ::-1])


class FrameSink:
    """Base class: ``write(frame, labels, overlay)`` for each frame in order, then ``close()`` (also a context
    manager). ``overlay`` is the graph's own (a :class:`Picture`), or None: the sink blends on the host.

    ``target`` is the file or folder the sink writes (None for null and window), checked against the inputs."""

    target: Path | None = None
    legend: LegendStrip | None = None  # drawn on the pictures of sinks that show them (videos, the window)

    def __init__(self, name: str, palette) -> None:
        self.name, self.palette, self.written = name, palette, 0

    def write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        try:
            if overlay is None:
                self._write(frame, labels)  # a sink written before in-graph overlays takes two arguments
            else:
                self._write(frame, labels, overlay)
        except OSError as exc:
            raise os_error(exc, self.target) from exc
        self.written += 1

    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        raise NotImplementedError

    def picture(self, frame: Frame, labels: np.ndarray, overlay: Picture | None, bgr: bool) -> np.ndarray:
        """The overlay in RGB (or BGR with ``bgr``): the graph's when it drew one, else blended here; with the
        class legend along its bottom edge when the sink has one."""
        if overlay is None:
            overlay = Picture(blend(frame.image, labels, self.palette, bgr=frame.bgr), frame.bgr)
        picture = overlay.in_order(bgr)
        return picture if self.legend is None else self.legend.draw(picture, labels, bgr=bgr)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Stop after an error: remove anything half-written."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()  # an interrupted run (Ctrl-C, SIGTERM) keeps what it wrote, complete
        else:
            self.abort()


class NullSink(FrameSink):
    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        pass


def count_video_frames(path: Path) -> int:
    """Frames a video file really holds, as a player would find them (0 when it does not open)."""
    cv2 = cv2_module()
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


@contextlib.contextmanager
def _stderr_to_debug():
    """Send what native code writes to stderr meanwhile (FFmpeg's complaints about each encoder it cannot open)
    to the debug log instead of the terminal."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            if said := sink.read().decode("utf-8", "replace").strip():
                log.debug("OpenCV while choosing a video codec: %s", said)


def open_video_writer(path: Path, fps: float, width: int, height: int) -> tuple[Any, str]:
    """An open OpenCV writer for ``path`` and its fourcc: the first of :data:`CODECS` for its ending that this
    OpenCV build can encode. Logs which; a warning when no browser can play the result."""
    cv2 = cv2_module()
    wanted = CODECS.get(path.suffix.lower(), ("mp4v",))
    for fourcc in wanted:
        with _stderr_to_debug():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if writer.isOpened():
            break
        writer.release()
    else:
        raise EdgesegError(f"OpenCV cannot write {path.suffix} video here (no encoder for "
                           f"{', '.join(wanted)}); try .webm or .avi")
    if fourcc in BROWSER_CODECS:
        log.info("video codec %s (%s: plays in browsers)", fourcc, BROWSER_CODECS[fourcc])
    elif path.suffix.lower() == ".avi":
        log.info("video codec %s (Motion JPEG .avi: plays in VLC and ffmpeg, not in browsers)", fourcc)
    else:
        log.warning("video codec %s: this OpenCV build encodes neither H.264 nor VP9, so browsers will not play "
                    "the video (VLC and ffmpeg will); write .webm, or convert it: ffmpeg -i IN -c:v libx264 "
                    "-pix_fmt yuv420p OUT.mp4", fourcc)
    return writer, fourcc


class VideoSink(FrameSink):
    """Overlay video; opened at the first frame's size, written to a temporary file and renamed into place on
    close once the file is checked to hold every frame (OpenCV reports no write errors: a full disk shows only
    as a short file), with the permissions the umask gives. An existing video is replaced only with
    ``overwrite``. The codec is the first of :data:`CODECS` OpenCV can encode (``fourcc`` once open); with
    ``classes`` and ``legend`` the frames carry a class legend strip."""

    def __init__(self, path: str | Path, palette, fps: float | None = None, *, overwrite: bool = False,
                 classes: list[str] | None = None, legend: bool = True) -> None:
        super().__init__(str(path), palette)
        self.legend = LegendStrip(classes, palette) if classes and legend else None
        self.fourcc: str | None = None
        self.path = self.target = check_file_target(path)
        self.fps = fps or 30.0
        self.writer: Any = None
        self.size: tuple[int, int] = (0, 0)
        self.tmp: Path | None = None
        if not self.path.parent.is_dir():
            raise EdgesegError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        if not os.access(self.path.parent, os.W_OK):
            raise EdgesegError(f"cannot write {self.path}: folder {self.path.parent} is not writable")
        if self.path.exists() and not overwrite:
            raise EdgesegError(f"{self.path} exists; edgeseg replaces a file only with --overwrite")

    def _open(self, height: int, width: int) -> None:
        clean_stale_temps(self.path)
        self.tmp = temp_path(self.path, self.path.suffix)  # set before OpenCV creates it: abort() removes it
        try:
            self.writer, self.fourcc = open_video_writer(self.tmp, self.fps, width, height)
        except EdgesegError:
            self.abort()
            raise
        self.size = (height, width)

    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        h, w = frame.image.shape[:2]
        if self.writer is None:
            self._open(h, w)
        assert self.writer is not None
        if (h, w) != self.size:
            raise EdgesegError(f"frame {frame.name} is {h}x{w}, the video is {self.size[0]}x{self.size[1]}: a video "
                               f"sink needs frames of one size (use overlays:DIR)")
        self.writer.write(self.picture(frame, labels, overlay, bgr=True))

    def close(self) -> None:
        if self.writer is None or self.tmp is None:
            return
        self.writer.release()
        self.writer = None
        found = count_video_frames(self.tmp)
        if found < self.written:
            self.abort()
            raise EdgesegError(f"{self.path} could not be written whole ({found} of {self.written} frames readable: "
                               f"is the disk full?); nothing was kept")
        try:
            make_file_readable(self.tmp)  # whatever mode the encoder created it with: the umask's
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise os_error(exc, self.path) from exc
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
    """One file per frame: label PNGs (class indices, palette colours) or overlay JPEGs.

    The folder must be new, empty, or one an earlier run wrote (it holds :data:`SINK_MARKER`): edgeseg never
    writes over files it did not write. Output names are unique per input: the file stem, or the stem and
    suffix when two inputs share a stem (``f000.png`` and ``f000.jpg`` give ``f000.png`` and ``f000_jpg.png``)."""

    SUFFIX = {"labels": ".png", "overlays": ".jpg"}

    def __init__(self, folder: str | Path, palette, kind: str) -> None:
        super().__init__(f"{kind}:{folder}", palette)
        self.folder, self.kind = Path(folder), kind
        self.target = self.folder
        self.used: set[str] = set()
        if self.folder.exists() and not self.folder.is_dir():
            raise EdgesegError(f"{kind}:{folder}: {folder} is a file, not a folder")
        if self.folder.is_dir() and any(self.folder.iterdir()) and not (self.folder / SINK_MARKER).is_file():
            raise EdgesegError(f"{folder} holds files edgeseg did not write; give {kind}: an empty or new folder")
        parent = next(p for p in (self.folder, *self.folder.parents) if p.exists())
        if not os.access(parent, os.W_OK):
            raise EdgesegError(f"cannot write to {self.folder}: {parent} is not writable")
        self.created = not self.folder.exists()
        self.opened = False

    def _open(self) -> None:
        """Created at the first frame, so a run refused before it leaves no folder behind."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / SINK_MARKER, json.dumps({"format": "edgeseg-sink", "kind": self.kind}) + "\n")
        self.opened = True

    def output_name(self, frame: Frame) -> str:
        """The file name for ``frame``, unique within this run."""
        path = Path(frame.name)
        stem = path.stem if not frame.name.isdigit() else f"{int(frame.name):06d}"
        candidates = [stem] + ([f"{stem}_{path.suffix[1:]}"] if path.suffix else [])
        name = next((c for c in candidates if c not in self.used), None)
        k = 1
        while name is None:
            name = f"{stem}_{k}" if f"{stem}_{k}" not in self.used else None
            k += 1
        self.used.add(name)
        return name + self.SUFFIX[self.kind]

    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        if not self.opened:
            self._open()
        out = self.folder / self.output_name(frame)
        with atomic_path(out) as tmp:
            if self.kind == "labels":
                save_label_png(tmp, labels, self.palette)
            else:
                picture = self.picture(frame, labels, overlay, bgr=False)
                Image.fromarray(picture).save(tmp, format="JPEG", quality=90)

    def abort(self) -> None:
        if self.opened and self.written == 0 and self.created:  # nothing of value: leave no empty folder
            with contextlib.suppress(OSError):
                (self.folder / SINK_MARKER).unlink()
                self.folder.rmdir()


class WindowSink(FrameSink):
    """An OpenCV window showing the overlay; q or closing the window ends the run."""

    TITLE = "edgeseg"

    def __init__(self, palette, title: str = TITLE, *, classes: list[str] | None = None, legend: bool = True) -> None:
        super().__init__("window", palette)
        self.legend = LegendStrip(classes, palette) if classes and legend else None
        self.cv2 = cv2_module()
        self.title = title  # one window per source when several run
        try:
            self.cv2.namedWindow(self.title, self.cv2.WINDOW_NORMAL)
        except self.cv2.error as exc:
            raise EdgesegError("cannot open a window (no display, or OpenCV built headless); use a file sink") from exc

    def _write(self, frame: Frame, labels: np.ndarray, overlay: Picture | None = None) -> None:
        self.cv2.imshow(self.title, self.picture(frame, labels, overlay, bgr=True))
        key = self.cv2.waitKey(1) & 0xFF
        if key == ord("q") or self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1:
            raise SinkClosed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cv2.destroyWindow(self.title)


def open_sink(spec: str | None, palette, fps: float | None = None, *, inputs: Iterable[str | Path] = (),
              overwrite: bool = False, title: str = WindowSink.TITLE, classes: list[str] | None = None,
              legend: bool = True) -> FrameSink:
    """The sink a spec names (see the module docstring). Its file or folder may not be, hold, or lie inside
    any of ``inputs`` (the run's sources and depth folder): a run never writes over what it reads. ``title``
    names a window (one per source when several run). With ``classes`` a video or window shows a class legend
    strip, unless ``legend`` is False."""
    text = (spec or "null").strip()
    if text == "null":
        return NullSink("null", palette)
    if text == "window":
        return WindowSink(palette, title, classes=classes, legend=legend)
    if text.startswith("frames:"):
        from edgeseg.runtime.frames_sink import open_frames_sink

        return open_frames_sink(text[len("frames:"):], palette, inputs)
    for kind in ("labels", "overlays"):
        if text.startswith(kind + ":"):
            folder = text[len(kind) + 1:]
            if not folder:
                raise EdgesegError(f"{kind}: needs a folder, e.g. {kind}:out/{kind}")
            refuse_input_overlap(folder, inputs)
            return FolderSink(folder, palette, kind)
    if Path(text).suffix.lower() in VIDEO_SUFFIXES:
        refuse_input_overlap(text, inputs)
        return VideoSink(text, palette, fps, overwrite=overwrite, classes=classes, legend=legend)
    raise EdgesegError(f"unknown sink {spec!r}: use null, window, OUT.mp4, labels:DIR, overlays:DIR or frames:DIR")
