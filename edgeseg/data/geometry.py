"""Frame → deploy input → frame: the one image geometry every command uses (no torch).

A camera frame rarely has the deploy graph's aspect ratio. The bundle records how frames are fitted
(``manifest.json`` ``input.resize``), and calibration, eval, bench and run all map frames with
:func:`frame_to_input` and labels back with :func:`labels_to_frame`, so INT8 is calibrated on exactly the
geometry it runs on:

``stretch``    resize to the deploy size, ignoring the aspect ratio (the default: every pixel is segmented)
``letterbox``  scale to fit inside, keeping the aspect ratio, and pad the rest with black
``crop``       scale to cover, keeping the aspect ratio, and cut the centre (labels outside it are ignored)

A bundle exported with ``--frame-size`` does this placement inside its graph (same :func:`placement`, see
:mod:`edgeseg.models.frame_graph`): it takes frames of the camera's size untouched and returns labels at that
size. Host code that has images of another size (a dataset, a calibration folder) stands them in for camera
frames by stretching them to the frame size (:func:`host_resize`): a dataset of the camera's aspect ratio is
then only scaled, and the graph applies the bundle's placement exactly as it will on the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgeseg.errors import EdgesegError

RESIZE_MODES = ("stretch", "letterbox", "crop")
DEFAULT_RESIZE = "stretch"
MAX_SIDE = 8192  # the largest image side any command takes (an 8K frame); more is a typo, not a camera


def host_resize(mode: str, frame_in_graph: bool) -> str:
    """How host code fits an image of another size to what the graph takes: the bundle's ``mode``, or, for a
    graph that takes the camera frame and places it itself, ``stretch`` to the frame size (the placement must
    not be applied twice)."""
    return "stretch" if frame_in_graph else mode


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×3 → uint8 ``size`` (bilinear); returned unchanged when already that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A single-channel map (uint8 labels, float32 depth) → ``size`` with nearest neighbour (never interpolated)."""
    h, w = size
    if labels.shape[:2] == (h, w):
        return labels
    return np.asarray(Image.fromarray(labels).resize((w, h), Image.Resampling.NEAREST))


@dataclass(frozen=True)
class Placement:
    """Where a frame lands in the deploy input: scaled to ``scaled`` (H, W), then placed at ``offset`` (y, x)
    of the deploy ``size`` (negative offsets cut, positive ones pad)."""

    scaled: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]


def placement(frame: tuple[int, int], size: tuple[int, int], mode: str = DEFAULT_RESIZE) -> Placement:
    """The placement of a frame of shape ``frame`` (H, W) in the deploy ``size`` for ``mode``."""
    if mode not in RESIZE_MODES:
        raise EdgesegError(f"unknown resize mode {mode!r}; choose {', '.join(RESIZE_MODES)}")
    (fh, fw), (h, w) = frame, size
    if mode == "stretch":
        return Placement((h, w), (0, 0), size)
    scale = min(h / fh, w / fw) if mode == "letterbox" else max(h / fh, w / fw)
    sh, sw = max(1, round(fh * scale)), max(1, round(fw * scale))
    if mode == "letterbox":
        sh, sw = min(sh, h), min(sw, w)
    else:
        sh, sw = max(sh, h), max(sw, w)
    return Placement((sh, sw), ((h - sh) // 2, (w - sw) // 2), size)


def _place(scaled: np.ndarray, where: Placement, fill) -> np.ndarray:
    """Put ``scaled`` into a ``where.size`` canvas at ``where.offset`` (cutting what falls outside)."""
    (h, w), (y, x) = where.size, where.offset
    canvas = np.full((h, w, *scaled.shape[2:]), fill, dtype=scaled.dtype)
    sy, sx = max(0, -y), max(0, -x)
    dy, dx = max(0, y), max(0, x)
    ch, cw = min(h - dy, scaled.shape[0] - sy), min(w - dx, scaled.shape[1] - sx)
    canvas[dy:dy + ch, dx:dx + cw] = scaled[sy:sy + ch, sx:sx + cw]
    return canvas


def frame_to_input(image: np.ndarray, size: tuple[int, int], mode: str = DEFAULT_RESIZE) -> np.ndarray:
    """An RGB frame (uint8 H×W×3, any size) → the deploy input's image at ``size``."""
    where = placement(image.shape[:2], size, mode)
    scaled = resize_image(image, where.scaled)
    return scaled if where.scaled == tuple(size) else _place(scaled, where, 0)


def map_to_input(values: np.ndarray, size: tuple[int, int], mode: str = DEFAULT_RESIZE, fill=0) -> np.ndarray:
    """A single-channel map at the frame's size (depth in metres, labels) → ``size``, nearest neighbour; padding
    is ``fill``."""
    where = placement(values.shape[:2], size, mode)
    scaled = resize_labels(values, where.scaled)
    return scaled if where.scaled == tuple(size) else _place(scaled, where, fill)


def labels_to_frame(labels: np.ndarray, frame: tuple[int, int], mode: str = DEFAULT_RESIZE,
                    fill: int = 255) -> np.ndarray:
    """Labels at the deploy size → the frame's size (H, W), nearest neighbour; pixels the deploy input did not
    see (``crop``) get ``fill`` (the ignore value)."""
    where = placement(frame, labels.shape[:2], mode)
    (h, w), (y, x) = where.scaled, where.offset
    if (h, w) == tuple(labels.shape[:2]):
        return resize_labels(labels, frame)
    if mode == "letterbox":
        return resize_labels(np.ascontiguousarray(labels[y:y + h, x:x + w]), frame)
    canvas = np.full((h, w), fill, dtype=labels.dtype)
    canvas[-y:-y + labels.shape[0], -x:-x + labels.shape[1]] = labels
    return resize_labels(canvas, frame)


def frames_to_batch(images: list[np.ndarray], size: tuple[int, int], mode: str = DEFAULT_RESIZE) -> np.ndarray:
    """Frames → the deploy graph's image input: uint8 N×H×W×3 RGB at ``size``."""
    return np.stack([frame_to_input(im, size, mode) for im in images]).astype(np.uint8, copy=False)
