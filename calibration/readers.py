"""Calibration images, fed exactly as the deploy graph takes them: uint8 N×H×W×3 RGB at the deploy size (or at the
frame size, in the frame's channel order, for a bundle exported with ``--frame-size``: images stretched to it, see
:func:`edgeseg.data.geometry.host_resize`), and
for an RGB-D model its depth maps (float32 N×H×W metres, from the dataset or a depth folder paired by stem).

Sources: any data spec (``synthetic:64``, ``cityscapes:/data``...), a folder of images (searched recursively
for jpg / png / bmp), or a video file (every k-th frame, needs OpenCV). Unreadable files are counted, skipped
and reported; a source with no usable image is an error. No torch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.data import is_data_spec
from edgeseg.data.base import IMAGE_SUFFIXES, read_image
from edgeseg.data.geometry import DEFAULT_RESIZE, frame_to_input, map_to_input
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import DEPTH_INPUT

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


@dataclass
class CalibrationSet:
    """The calibration images, already at the deploy size, plus what was skipped."""

    images: list[np.ndarray]
    source: str
    skipped: list[str] = field(default_factory=list)
    depths: list[np.ndarray] | None = None  # one per image for RGB-D models

    def fingerprint(self) -> str:
        """sha256 over every image's (and depth map's) bytes: part of the calibration cache's identity."""
        h = hashlib.sha256()
        for im in self.images + (self.depths or []):
            h.update(np.ascontiguousarray(im).tobytes())
        return h.hexdigest()

    def feeds(self, batch: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Input dicts for the deploy graph: ``image``, plus ``depth`` when the set has depth maps."""
        for start in range(0, len(self.images) - batch + 1, batch):
            feed = {"image": np.stack(self.images[start:start + batch])}
            if self.depths is not None:
                feed[DEPTH_INPUT] = np.stack(self.depths[start:start + batch]).astype(np.float32)
            yield feed


def _from_dataset(spec: str, size, count: int | None, seed: int, split: str, depth: bool,
                  mode: str) -> CalibrationSet:
    from edgeseg.data import open_dataset
    source = open_dataset(spec, split)
    order = np.random.default_rng(seed).permutation(len(source))[: count or len(source)]
    if not depth:
        return CalibrationSet([frame_to_input(source[int(i)][0], size, mode) for i in order], f"{spec} ({split})")
    samples = [source.rgbd(int(i)) for i in order]
    return CalibrationSet([frame_to_input(s[0], size, mode) for s in samples], f"{spec} ({split})",
                          depths=[map_to_input(s[2], size, mode) for s in samples])


def _from_folder(root: Path, size, count: int | None, seed: int, depth_dir: Path | None,
                 mode: str) -> CalibrationSet:
    from edgeseg.data.depth import find_depth, read_depth

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if depth_dir is not None:
        files = [f for f in files if depth_dir not in f.parents]
    if not files:
        raise EdgesegError(f"calibration: no .jpg/.png/.bmp images under {root}")
    order = np.random.default_rng(seed).permutation(len(files))
    images, depths, skipped = [], [], []
    for i in order:
        if count and len(images) >= count:
            break
        try:
            image = frame_to_input(read_image(files[i]), size, mode)
            if depth_dir is not None:
                depths.append(map_to_input(read_depth(find_depth(depth_dir, files[i].stem)), size, mode))
            images.append(image)
        except EdgesegError:
            skipped.append(str(files[i]))
    return CalibrationSet(images, str(root), skipped, depths if depth_dir is not None else None)


def _from_video(path: Path, size, count: int | None, every: int, mode: str) -> CalibrationSet:
    try:
        import cv2
    except ImportError:
        raise EdgesegError("calibration from a video needs OpenCV: pip install 'edgeseg[camera]'") from None
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise EdgesegError(f"calibration: cannot open video {path}")
    images, index, failures = [], 0, 0
    try:
        while not count or len(images) < count:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                if frame is None or frame.size == 0:
                    failures += 1
                else:
                    images.append(frame_to_input(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size, mode))
            index += 1
    finally:
        capture.release()
    skipped = [f"{failures} frames failed to decode"] if failures else []
    return CalibrationSet(images, f"{path} (every {every} frames)", skipped)


def check_calibration_source(spec: str) -> None:
    """Refuse, before minutes of export, a calibration source that cannot give a single image: a missing path,
    a file that is no video, a folder without images (the same one-line errors :func:`load_calibration_set`
    gives; a data spec is checked when it is opened)."""
    if is_data_spec(spec):
        return
    path = Path(spec)
    if path.is_dir():
        if next((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), None) is None:
            raise EdgesegError(f"calibration: no .jpg/.png/.bmp images under {path}")
    elif path.exists() and not (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
        raise EdgesegError(f"calibration: {path} is neither an image folder nor a video ({', '.join(VIDEO_SUFFIXES)})")
    elif not path.exists():
        raise EdgesegError(f"calibration source {spec!r} not found (a data spec, an image folder or a video file)")


def load_calibration_set(spec: str, size: tuple[int, int], *, count: int | None = None, seed: int = 0,
                         every: int = 10, split: str = "train", depth: bool = False,
                         depth_dir: str | Path | None = None, mode: str = DEFAULT_RESIZE,
                         bgr: bool = False) -> CalibrationSet:
    """Read up to ``count`` calibration images (seeded shuffle) from a data spec, folder or video file, fitted
    to the deploy ``size`` by the bundle's resize ``mode`` exactly as the runtime fits frames
    (:func:`edgeseg.data.geometry.frame_to_input`).

    ``bgr``: the images in BGR order, for a bundle exported with ``--frame-format bgr``.

    ``depth`` (an RGB-D model): depth maps come with a data spec (its ``rgbd``) or, for an image folder, from
    ``depth_dir`` paired by file stem; a video has none.
    """
    if is_data_spec(spec):
        calib = _from_dataset(spec, size, count, seed, split, depth, mode)
    else:
        path = Path(spec)
        if depth and path.is_dir() and depth_dir is None:
            raise EdgesegError("an RGB-D model calibrates on a data spec with depth or an image folder with "
                               "--calib-depth DIR (depth maps paired by file stem)")
        if depth and path.is_file():
            raise EdgesegError("an RGB-D model cannot calibrate on a video (no depth); use a data spec or an "
                               "image folder with --calib-depth DIR")
        if path.is_dir():
            calib = _from_folder(path, size, count, seed, Path(depth_dir) if depth_dir is not None else None, mode)
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            calib = _from_video(path, size, count, every, mode)
        elif path.exists():
            raise EdgesegError(f"calibration: {path} is neither an image folder nor a video "
                               f"({', '.join(VIDEO_SUFFIXES)})")
        else:
            raise EdgesegError(f"calibration source {spec!r} not found (a data spec, an image folder or a video file)")
    if calib.skipped:
        log.warning("calibration: skipped %d unreadable files, e.g. %s", len(calib.skipped), calib.skipped[0])
    if not calib.images:
        raise EdgesegError(f"calibration: no usable image in {calib.source}"
                           + (f" ({len(calib.skipped)} unreadable)" if calib.skipped else ""))
    log.info("calibration: %d images from %s", len(calib.images), calib.source)
    if bgr:
        calib.images = [np.ascontiguousarray(im[:, :, ::-1]) for im in calib.images]
    return calib
