"""Synthetic frame sequences with exact labels and exact motion, built from the synthetic street scenes.

Two camera motions, each drawn from the seed alone (the same frames on every machine):

``pan``
    A window sliding over a scene rendered wider (and taller) than the frame, by a whole number of pixels per
    frame: the motion is a uniform integer shift, so the exact flow reproduces a frame from its neighbour
    pixel for pixel (up to each frame's own sensor noise).
``dolly``
    The camera moves forward along its optical axis. The scene's depth (:func:`edgeseg.data.depth.scene_depth`)
    moves each point radially from the focus of expansion, ``x' = c + (x - c) Z / (Z - Δz)``: near ground and
    objects grow faster than far ones, sky (infinitely far) stays. Each frame is a forward warp of the scene as
    seen from the centre frame, with a depth buffer (nearer wins) and 2×2 sub-pixel splats; pixels nothing lands
    on (what the nearer objects uncover, and what lies outside the rendered scene) are 255 in the label and
    filled from their neighbours in the image. The focus of expansion is on the scene's horizon.

Every frame gets its own sensor noise and gain, so optical flow is estimated on frames that differ the way
camera frames do. A sequence has ``2K+1`` frames; the centre one (offset 0) plays the labelled frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeseg.data.synthetic import ROAD, render_scene
from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX
from edgeseg.video.clips import Clip

MOTIONS = ("pan", "dolly")
_TAG = {"pan": 1, "dolly": 2}  # seeds the motion's own random draws apart from the scene's
NEAR_M = 3.0  # scene_depth's distance of the bottom row of the rendered scene
SPLAT = 2  # sub-pixels per side when forward-warping a dolly frame: gap-free up to 2x magnification
MAX_TRAVEL = 0.45  # the dolly's largest forward travel, as a fraction of NEAR_M (magnification below 2)
MARGIN = 0.15  # the dolly's scene extends this fraction of the frame beyond each side of it
MAX_STEPS = 5  # frames each side of the centre; a clip's frames do not depend on how many are asked for


@dataclass(frozen=True, eq=False)
class FrameSequence(Clip):
    """``frames`` (T×H×W×3 uint8 RGB) and their exact ``labels`` (T×H×W uint8, 255 where unknown) of one synthetic
    clip; frame ``centre`` is offset 0. The motion is kept to answer :meth:`exact_flow`: per-frame window
    offsets (pan) or per-frame forward travel, focus and per-pixel depth (dolly)."""

    frames: np.ndarray
    labels: np.ndarray
    centre: int
    motion: str
    seed: int
    offsets: np.ndarray | None = None  # pan: (T, 2) window position (x, y) in the scene
    travel: np.ndarray | None = None  # dolly: (T,) forward travel in metres from the centre frame
    focus: tuple[float, float] = (0.0, 0.0)  # dolly: focus of expansion (x, y) in frame pixels
    depth: np.ndarray | None = None  # dolly: (T, H, W) scene depth of what each pixel shows; 0 sky, NaN none
    name: str = field(default="")

    def __len__(self) -> int:
        return len(self.frames)

    def _index(self, offset: int) -> int:
        index = self.centre + int(offset)
        if not 0 <= index < len(self.frames):
            raise IndexError(f"offset {offset} is outside this sequence of {len(self.frames)} frames")
        return index

    def has(self, offset: int) -> bool:
        return 0 <= self.centre + int(offset) < len(self.frames)

    def frame(self, offset: int) -> np.ndarray:
        return self.frames[self._index(offset)]

    def true_label(self, offset: int) -> np.ndarray:
        return self.labels[self._index(offset)]

    def exact_flow(self, source: int, target: int) -> np.ndarray:
        """Where each pixel of frame ``source`` is in frame ``target``, minus where it is: H×W×2 (dx, dy)
        float32; NaN where ``source`` shows nothing known or the point is behind the camera at ``target``."""
        a, b = self._index(source), self._index(target)
        h, w = self.labels.shape[1:]
        if self.motion == "pan":
            assert self.offsets is not None
            shift = (self.offsets[a] - self.offsets[b]).astype(np.float32)
            return np.broadcast_to(shift, (h, w, 2)).copy()
        assert self.travel is not None and self.depth is not None
        z = self.depth[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = _magnification(z, self.travel[b]) / _magnification(z, self.travel[a])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        flow = np.stack([(xx - self.focus[0]) * (ratio - 1), (yy - self.focus[1]) * (ratio - 1)], axis=-1)
        return flow.astype(np.float32)


def _magnification(z: np.ndarray, travel: float) -> np.ndarray:
    """``Z / (Z - travel)``: how much farther from the focus a point at depth ``z`` appears after moving forward
    ``travel``; 1 for sky (depth 0, infinitely far), NaN for unknown points and points then behind the camera."""
    z = np.asarray(z, np.float64)
    ahead = z - travel
    out = np.where(z > 0, z / np.where(ahead > 1e-3, ahead, np.nan), 1.0)
    return np.where(np.isnan(z), np.nan, out)


def render_sequence(seed: int, size: tuple[int, int], n_frames: int = 7, motion: str = "pan", *,
                    sensor_noise: bool = True) -> FrameSequence:
    """The synthetic clip ``seed``: ``n_frames`` (odd, at most 11) frames of ``size`` (H, W) moving as ``motion``
    (pan or dolly), the middle one the labelled frame. ``sensor_noise=False`` leaves out the per-frame noise and gain
    (then a pan frame is exactly a shifted copy of its neighbour)."""
    if motion not in MOTIONS:
        raise EdgesegError(f"unknown motion {motion!r}; choose {' or '.join(MOTIONS)}")
    if n_frames < 1 or n_frames % 2 == 0 or n_frames > 2 * MAX_STEPS + 1:
        raise EdgesegError(f"a sequence has an odd number of frames up to {2 * MAX_STEPS + 1} (the labelled one in "
                           f"the middle), got {n_frames}")
    h, w = size
    if h < 16 or w < 16:
        raise EdgesegError(f"sequence frames must be at least 16x16, got {h}x{w}")
    rng = np.random.default_rng([seed, _TAG[motion]])
    k = n_frames // 2
    make = _pan if motion == "pan" else _dolly
    frames, labels, extra = make(seed, (h, w), k, rng)
    if sensor_noise:
        frames = np.stack([_sensor(f, np.random.default_rng([seed, _TAG[motion], 1000 + MAX_STEPS + i - k]))
                           for i, f in enumerate(frames)])
    return FrameSequence(frames=frames, labels=labels, centre=k, motion=motion, seed=seed,
                         name=f"{motion}_{seed}", **extra)


def _sensor(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame's own exposure and read noise: gain within a few percent, Gaussian noise of 1-3 grey levels."""
    gain = 1.0 + rng.normal(0.0, 0.02)
    noisy = image.astype(np.float32) * gain + rng.uniform(1.0, 3.0) * rng.standard_normal(image.shape,
                                                                                         dtype=np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _pan(seed: int, size: tuple[int, int], k: int, rng: np.random.Generator):
    h, w = size
    span = 2 * MAX_STEPS  # the scene is wide enough for the longest clip, whose middle frames the others share
    vx = int(rng.integers(max(1, w // 128), max(1, w // 64) + 1)) * (1 if rng.random() < 0.5 else -1)
    vy = int(rng.integers(-1, 2)) if h >= 64 else 0
    image, label = render_scene(seed, (h + abs(vy) * span, w + abs(vx) * span))
    middle = np.array([abs(vx) * MAX_STEPS, abs(vy) * MAX_STEPS])
    offsets = np.stack([middle + t * np.array([vx, vy]) for t in range(-k, k + 1)])
    frames = np.stack([image[oy:oy + h, ox:ox + w] for ox, oy in offsets])
    labels = np.stack([label[oy:oy + h, ox:ox + w] for ox, oy in offsets])
    return frames, labels, {"offsets": offsets}


def _horizon(label: np.ndarray, depth: np.ndarray) -> float:
    """The scene's horizon row: on the road the inverse depth falls linearly to 0 there."""
    rows, cols = np.nonzero((label == ROAD) & (depth > 0))
    if np.unique(rows).size >= 2:
        slope, intercept = np.polyfit(rows.astype(np.float64), 1.0 / depth[rows, cols], 1)
        if slope > 0:
            return float(-intercept / slope)
    return 0.45 * label.shape[0]


def _dolly(seed: int, size: tuple[int, int], k: int, rng: np.random.Generator):
    h, w = size
    mh, mw = int(round(MARGIN * h)), int(round(MARGIN * w))
    image, label, depth = render_scene(seed, (h + 2 * mh, w + 2 * mw), with_depth=True)
    step = rng.uniform(0.5, 1.0) * MAX_TRAVEL * NEAR_M / MAX_STEPS
    focus_world = (rng.uniform(0.4, 0.6) * (w + 2 * mw), _horizon(label, depth))
    travel = np.arange(-k, k + 1, dtype=np.float64) * step
    frames, labels, depths = zip(*(_splat(image, label, depth, focus_world, t, (mh, mw), size) for t in travel))
    return np.stack(frames), np.stack(labels), {
        "travel": travel, "focus": (focus_world[0] - mw, focus_world[1] - mh), "depth": np.stack(depths)}


def _splat(image, label, depth, focus, travel: float, margin: tuple[int, int], size: tuple[int, int]):
    """Forward-warp the scene to a camera ``travel`` metres ahead: (image, label, depth) of the frame window."""
    big_h, big_w = label.shape
    h, w = size
    sub = (np.arange(SPLAT) + 0.5) / SPLAT - 0.5
    ys = np.repeat(np.arange(big_h), SPLAT)
    xs = np.repeat(np.arange(big_w), SPLAT)
    ysub = (ys + np.tile(sub, big_h))[:, None]
    xsub = (xs + np.tile(sub, big_w))[None, :]
    z = depth[ys][:, xs]
    mag = _magnification(z, travel)
    tx = np.rint(focus[0] + (xsub - focus[0]) * mag - margin[1])
    ty = np.rint(focus[1] + (ysub - focus[1]) * mag - margin[0])
    keep = np.isfinite(mag) & (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    target = (ty[keep] * w + tx[keep]).astype(np.int64)
    distance = np.where(z > 0, z - travel, np.inf)[keep]
    source = np.broadcast_to(ys[:, None] * big_w + xs[None, :], z.shape)[keep]
    order = np.lexsort((source, distance, target))  # per target pixel: the nearest point, ties by position
    first = np.unique(target[order], return_index=True)[1]
    winner, where = source[order][first], target[order][first]
    out_label = np.full(h * w, IGNORE_INDEX, np.uint8)
    out_depth = np.full(h * w, np.nan, np.float32)
    out_image = np.zeros((h * w, 3), np.float32)
    filled = np.zeros(h * w, bool)
    out_label[where] = label.ravel()[winner]
    out_depth[where] = depth.ravel()[winner]
    out_image[where] = image.reshape(-1, 3)[winner]
    filled[where] = True
    out_image = _fill_holes(out_image.reshape(h, w, 3), filled.reshape(h, w))
    return np.clip(np.rint(out_image), 0, 255).astype(np.uint8), out_label.reshape(h, w), out_depth.reshape(h, w)


def _fill_holes(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown pixels with the mean of their known 4-neighbours, growing inwards until none is left."""
    image, known = image.copy(), known.copy()
    if not known.any():
        return image
    while not known.all():
        total = np.zeros_like(image)
        count = np.zeros(known.shape, np.float32)
        for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
            shifted_known = np.roll(known, step, axis)
            shifted = np.roll(image, step, axis)
            edge = [slice(None)] * 2
            edge[axis] = slice(0, 1) if step == 1 else slice(-1, None)
            shifted_known[tuple(edge)] = False
            total += np.where(shifted_known[..., None], shifted, 0)
            count += shifted_known
        grow = ~known & (count > 0)
        image[grow] = total[grow] / count[grow][:, None]
        known |= grow
    return image
