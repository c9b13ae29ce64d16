"""Cheap labels, simulated from dense ones or given sparse, for weakly supervised training (numpy, no torch).

Modes (``TrainConfig.weak``, ``edgeseg weak-labels --mode``):

``points``      one click per connected region (8-connected, per class) of at least ``min_area`` pixels, at its
                deepest point: the maximum of the distance to the region's edge (the image border counts as one)
``scribbles``   one stroke per such region: a 3-pixel-wide polyline through 3 to 5 random points of the region
                eroded by ``margin``, clipped to the region; a region too thin to erode gets its click instead
``boxes``       the bounding box of every region of a *thing* class (``boxes:NAME,NAME`` names them; by default
                the usual thing classes by name: person, car, ...). The label is an allowed-class set per pixel:
                the stuff classes everywhere, a thing class only inside its boxes
``image``       image-level tags: every pixel may be any class present in the image
``crop:HxW``    tags of H×W tiles (a grid at a random offset): every pixel may be any class of its tile
``given``       the source's labels are already sparse (a user's clicks or scribbles; 255 = unlabelled)

Pixels the source ignores stay ignored. An annotation depends on ``(seed, index)`` only, never on the epoch:
re-drawing clicks each epoch would leak far more supervision than an annotator gives. It is kept as geometry at
the source's resolution (annotated pixels, rectangles) and drawn *after* the training transform's geometry, as
Obukhov et al.'s gated CRF code does (arXiv 1906.04651): a map of source pixel indices rides through the
transform (:meth:`WeakLabels.coordinates`), and every annotated pixel inside the crop lands on at least one
output pixel, so a nearest-neighbour downscale cannot erase a one-pixel click or a thin stroke.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX

SPARSE_MODES = ("points", "scribbles", "given")
SET_MODES = ("boxes", "image", "crop")
MODES = "none, points, scribbles, boxes[:NAME,NAME...], image, crop:HxW, given"
SOURCE_PIXEL = "source_pixel"  # the side map: 1 + the source pixel's flat index, 0 = padding

# Classes annotated by boxes unless named: Cityscapes' instance classes, CamVid's, Pascal VOC's objects and COCO's
# things (edgeseg.data.labelsets.COCO_THINGS).
THING_NAMES = frozenset((
    "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "pedestrian", "bicyclist",
    "aeroplane", "bird", "boat", "bottle", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
    "pottedplant", "sheep", "sofa", "tvmonitor",
))


@dataclass(frozen=True)
class WeakMode:
    """A parsed mode string: ``kind`` and its option (``crop`` tile size, ``things`` named for boxes)."""

    kind: str
    crop: tuple[int, int] | None = None
    things: tuple[str, ...] | None = None

    @property
    def sets(self) -> bool:
        """Whether the labels are allowed-class sets (boxes, tags) rather than sparse class indices."""
        return self.kind in SET_MODES

    def __str__(self) -> str:
        if self.crop:
            return f"crop:{self.crop[0]}x{self.crop[1]}"
        return self.kind + (f":{','.join(self.things)}" if self.things else "")


def parse_mode(text: str) -> WeakMode:
    """Parse a mode string; a malformed one raises :class:`EdgesegError` listing the forms."""
    kind, sep, option = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind == "crop":
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", option)
        if not m or min(int(m[1]), int(m[2])) < 1:
            raise EdgesegError(f"weak mode crop needs a tile size, e.g. crop:64x128, got {text!r}")
        return WeakMode(kind, crop=(int(m[1]), int(m[2])))
    if kind == "boxes" and sep:
        names = tuple(n.strip() for n in option.split(",") if n.strip())
        if not names:
            raise EdgesegError(f"weak mode boxes:NAME,NAME needs class names, got {text!r}")
        return WeakMode(kind, things=names)
    if kind not in ("none", *SPARSE_MODES, *SET_MODES) or sep:
        raise EdgesegError(f"unknown weak mode {text!r}; expected one of {MODES}")
    return WeakMode(kind)


@dataclass
class Annotation:
    """One sample's annotation at the source's resolution ``shape``: annotated pixels ``ys, xs`` of class
    ``classes`` (sparse modes), or classes allowed everywhere (``base``) plus rectangles ``rects`` (y0, y1, x0,
    x1, inclusive) each allowing ``rect_classes`` (set modes). ``count`` is the number of clicks, strokes, boxes
    or tiles."""

    shape: tuple[int, int]
    ys: np.ndarray
    xs: np.ndarray
    classes: np.ndarray
    count: int
    base: np.ndarray | None = None
    rects: np.ndarray | None = None
    rect_classes: np.ndarray | None = None


class WeakLabels:
    """Weak annotations of ``mode`` for a source with classes ``classes``, drawn from ``(seed, index)``.

    For a sample: :meth:`annotate` its full-resolution label, carry :meth:`coordinates` through the geometric
    transform as a side map, then :meth:`target` gives the label of the transformed sample: uint8 H×W (255 =
    unlabelled) for the sparse modes, bool C×H×W allowed classes for the set modes."""

    def __init__(self, mode: str | WeakMode, classes: Sequence[str], seed: int = 0, *, min_area: int = 16,
                 margin: int = 3, ignore_index: int = IGNORE_INDEX) -> None:
        self.mode = parse_mode(mode) if isinstance(mode, str) else mode
        if self.mode.kind == "none":
            raise EdgesegError("weak mode none has no annotations")
        self.classes, self.seed = list(classes), int(seed)
        self.min_area, self.margin, self.ignore_index = min_area, margin, ignore_index
        self.things = self._thing_ids() if self.mode.kind == "boxes" else ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _thing_ids(self) -> tuple[int, ...]:
        if self.mode.things:
            unknown = [n for n in self.mode.things if n not in self.classes]
            if unknown:
                raise EdgesegError(f"weak mode {self.mode}: {unknown[0]!r} is not a class of the data "
                                   f"({', '.join(self.classes)})")
            return tuple(sorted(self.classes.index(n) for n in self.mode.things))
        ids = tuple(i for i, n in enumerate(self.classes) if n.lower() in THING_NAMES)
        if not ids:
            raise EdgesegError(f"weak mode boxes: none of the classes ({', '.join(self.classes)}) is a known "
                               f"thing class; name them, e.g. boxes:{self.classes[-1]}")
        return ids

    # -- drawing the annotation from the dense label -----------------------------------------------------------
    def annotate(self, index: int, label: np.ndarray) -> Annotation:
        """The annotation of sample ``index`` from its full-resolution ``label`` (a function of the seed, the index
        and the label only)."""
        kind = self.mode.kind
        if kind == "given":
            ys, xs = np.nonzero(label != self.ignore_index)
            return Annotation(label.shape, ys, xs, label[ys, xs], 0)
        rng = np.random.default_rng((self.seed, index))
        if kind in ("points", "scribbles"):
            return self._strokes(label, rng, scribble=kind == "scribbles")
        present = self._present(label)
        if kind == "image":
            return self._sets(label.shape, present, [], [], 1)
        if kind == "boxes":
            return self._boxes(label)
        return self._tiles(label, rng)

    def _present(self, label: np.ndarray) -> np.ndarray:
        found = np.zeros(self.num_classes, bool)
        values = np.unique(label)
        found[values[values < self.num_classes]] = True
        return found

    def _sets(self, shape, base, rects, rect_classes, count) -> Annotation:
        empty = np.zeros(0, np.int64)
        return Annotation(shape, empty, empty, empty.astype(np.uint8), count, base=base,
                          rects=np.asarray(rects, np.int64).reshape(-1, 4),
                          rect_classes=np.asarray(rect_classes, bool).reshape(-1, self.num_classes))

    def _regions(self, label: np.ndarray, class_ids, min_area: int = 1):
        """Per 8-connected region of a class in ``class_ids`` with at least ``min_area`` pixels: (class, its
        bounding slices, its mask there, and each pixel's distance to the nearest pixel outside the region, the
        image border counting as outside; 0 off the region)."""
        ndimage = _ndimage()
        eight = np.ones((3, 3), bool)
        for c in class_ids:
            mask = label == c
            if not mask.any():
                continue
            comp, n = ndimage.label(mask, structure=eight)
            areas = np.bincount(comp.ravel(), minlength=n + 1)
            for k, box in enumerate(ndimage.find_objects(comp), start=1):
                if areas[k] < min_area:
                    continue
                inside = comp[box] == k
                # within the bounding box only: the nearest pixel outside a region is never one of another region
                # of the same class (two 8-connected regions do not touch), so this is the class's own transform
                yield c, box, inside, ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]

    def _strokes(self, label: np.ndarray, rng: np.random.Generator, scribble: bool) -> Annotation:
        ys, xs, cs, count = [], [], [], 0
        for c, box, inside, depth in self._regions(label, range(self.num_classes), self.min_area):
            deepest = np.unravel_index(int(np.argmax(depth)), depth.shape)
            stroke = self._scribble(inside, depth, deepest, rng) if scribble else None
            if stroke is None:
                py, px = np.array([deepest[0]]), np.array([deepest[1]])
            else:
                py, px = np.nonzero(stroke)
            ys.append(py + box[0].start)
            xs.append(px + box[1].start)
            cs.append(np.full(py.size, c, np.uint8))
            count += 1
        if not ys:
            empty = np.zeros(0, np.int64)
            return Annotation(label.shape, empty, empty, empty.astype(np.uint8), 0)
        return Annotation(label.shape, np.concatenate(ys), np.concatenate(xs), np.concatenate(cs), count)

    def _scribble(self, inside: np.ndarray, depth: np.ndarray, deepest, rng) -> np.ndarray | None:
        """A 3-pixel stroke through 3-5 points of the region eroded by ``margin`` (the part holding the deepest
        point), clipped to the region shrunk by one pixel; ``None`` when the eroded region is empty."""
        ndimage = _ndimage()
        core = depth > self.margin
        if not core[deepest]:
            return None
        parts, _ = ndimage.label(core, structure=np.ones((3, 3), bool))
        py, px = np.nonzero(parts == parts[deepest])
        chosen = rng.choice(py.size, size=min(py.size, int(rng.integers(3, 6))), replace=False)
        points = np.stack([py[chosen], px[chosen]], axis=1).astype(np.float64)
        if len(points) > 1:  # in order along the region's long axis, so the stroke does not zig-zag
            centred = np.stack([py, px], axis=1) - np.array([py.mean(), px.mean()])
            axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
            points = points[np.argsort(points @ axis, kind="stable")]
        line = np.zeros(inside.shape, bool)
        for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]) if len(points) > 1 else [(points[0], points[0])]:
            n = int(max(abs(y1 - y0), abs(x1 - x0))) + 1
            line[np.rint(np.linspace(y0, y1, n)).astype(int), np.rint(np.linspace(x0, x1, n)).astype(int)] = True
        return ndimage.binary_dilation(line, structure=np.ones((3, 3), bool)) & (depth > 1)

    def _boxes(self, label: np.ndarray) -> Annotation:
        base = ~np.isin(np.arange(self.num_classes), self.things)
        rects, rect_classes = [], []
        ndimage = _ndimage()
        for c in self.things:
            comp, _ = ndimage.label(label == c, structure=np.ones((3, 3), bool))
            for box in ndimage.find_objects(comp):
                rects.append((box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1))
                rect_classes.append(np.arange(self.num_classes) == c)
        return self._sets(label.shape, base, rects, rect_classes, len(rects))

    def _tiles(self, label: np.ndarray, rng: np.random.Generator) -> Annotation:
        (h, w), (th, tw) = label.shape, self.mode.crop
        oy, ox = int(rng.integers(0, th)), int(rng.integers(0, tw))
        rects, rect_classes = [], []
        for y0 in range(oy - th if oy else 0, h, th):
            for x0 in range(ox - tw if ox else 0, w, tw):
                ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + th, h), min(x0 + tw, w)
                rects.append((ya, yb - 1, xa, xb - 1))
                rect_classes.append(self._present(label[ya:yb, xa:xb]))
        return self._sets(label.shape, np.zeros(self.num_classes, bool), rects, rect_classes, len(rects))

    # -- drawing it after the geometry -------------------------------------------------------------------------
    @staticmethod
    def coordinates(shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """The side map to carry through the geometric transform: 1 + each pixel's flat index (0 = padding)."""
        h, w = shape
        return {SOURCE_PIXEL: np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w)}

    def target(self, annotation: Annotation, label: np.ndarray, side: dict[str, np.ndarray]) -> np.ndarray:
        """The label of the transformed sample: ``label`` is its transformed dense label (what the source ignores,
        what the crop padded; for simulated clicks and strokes, the class each pixel shows after the resize),
        ``side`` holds the transformed :meth:`coordinates`."""
        rows, cols = _axis_maps(side[SOURCE_PIXEL], annotation.shape[1])
        near_rows, near_cols = _nearest(rows, annotation.shape[0]), _nearest(cols, annotation.shape[1])
        if self.mode.sets:
            return self._set_target(annotation, label, rows, cols, near_rows, near_cols)
        out = np.full(label.shape, self.ignore_index, np.uint8)
        sparse = np.full(annotation.shape, self.ignore_index, np.uint8)
        sparse[annotation.ys, annotation.xs] = annotation.classes
        r, c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
        out[np.ix_(r, c)] = sparse[np.ix_(rows[r], cols[c])]  # what nearest-neighbour sampling keeps
        oy, ox = near_rows[annotation.ys], near_cols[annotation.xs]  # and what it dropped, at its nearest pixel
        keep = (oy >= 0) & (ox >= 0)
        oy, ox, cls = oy[keep], ox[keep], annotation.classes[keep]
        free = out[oy, ox] == self.ignore_index
        if self.mode.kind != "given":  # simulated: where the dense label there disagrees (a 2-pixel pole shrunk
            free &= label[oy, ox] == cls  # past its click), the region is gone and so is the click
        out[oy[free], ox[free]] = cls[free]
        return out

    def _set_target(self, annotation, label, rows, cols, near_rows, near_cols) -> np.ndarray:
        inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
        allowed = annotation.base[:, None, None] & inside[None]
        for (y0, y1, x0, x1), classes in zip(annotation.rects, annotation.rect_classes):
            block = _span(rows, near_rows, y0, y1)[:, None] & _span(cols, near_cols, x0, x1)[None, :]
            allowed[classes] |= block
        allowed[:, label == self.ignore_index] = False
        return allowed

    def label(self, index: int, label: np.ndarray) -> np.ndarray:
        """The weak label of sample ``index`` at its own resolution (no transform)."""
        return self.target(self.annotate(index, label), label, self.coordinates(label.shape))


def _ndimage():
    try:
        from scipy import ndimage
    except ImportError:
        raise EdgesegError("simulated weak labels need scipy: pip install 'edgeseg[train]'") from None
    return ndimage


def _axis_maps(source_pixel: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output row the source row, per output column the source column (-1 for padding), from a transformed
    :meth:`WeakLabels.coordinates` map; the geometry must be axis-aligned (scale, crop, flip)."""
    valid = source_pixel > 0
    index = source_pixel.astype(np.int64) - 1
    r, c = np.where(valid, index // width, -1), np.where(valid, index % width, -1)
    rows, cols = r.max(axis=1), c.max(axis=0)
    if not (np.array_equal(valid, (rows >= 0)[:, None] & (cols >= 0)[None, :])
            and np.array_equal(r[valid], np.broadcast_to(rows[:, None], r.shape)[valid])
            and np.array_equal(c[valid], np.broadcast_to(cols[None, :], c.shape)[valid])):
        raise ValueError("weak labels follow axis-aligned geometry only (scale, crop, flip)")
    return rows, cols


def _nearest(axis_map: np.ndarray, length: int) -> np.ndarray:
    """For each source index 0..length-1 the output index whose source index is nearest, or -1 outside the span
    the output covers."""
    out_index = np.flatnonzero(axis_map >= 0)
    if out_index.size == 0:
        return np.full(length, -1, np.int64)
    order = np.argsort(axis_map[out_index], kind="stable")
    values, out_index = axis_map[out_index][order], out_index[order]
    s = np.arange(length)
    hi = np.clip(np.searchsorted(values, s), 0, values.size - 1)
    lo = np.clip(hi - 1, 0, values.size - 1)
    nearest = np.where(np.abs(values[hi] - s) <= np.abs(s - values[lo]), out_index[hi], out_index[lo])
    return np.where((s >= values[0]) & (s <= values[-1]), nearest, -1)


def _span(axis_map: np.ndarray, near: np.ndarray, low: int, high: int) -> np.ndarray:
    """Output indices whose source index lies in ``[low, high]``; a span thinner than the sampling keeps its
    nearest output index, so a thin box is never erased."""
    span = (axis_map >= low) & (axis_map <= high)
    centre = near[(low + high) // 2]
    if not span.any() and centre >= 0:
        span[centre] = True
    return span
