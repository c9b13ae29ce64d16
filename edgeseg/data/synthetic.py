"""Procedural street scenes: a built-in dataset so training, export, calibration and benchmarks run anywhere.

Each scene is drawn from its seed alone (``numpy.random.default_rng(seed)``), so a sample is the same on every
machine. Train and val use disjoint seed ranges. Eight Cityscapes-like classes with Cityscapes colours.
Difficulty comes from what makes real scenes hard: road and sidewalk of similar greys, overcast skies close to
building colours, thin poles, small distant people and cars, occlusion, texture, shadows, exposure changes,
blur and sensor noise.

Object sizes suit the default 256×512 frame and networks that predict at 1/8 of it (BiSeNet V2's head): the
camera has a moderately long lens (:data:`METRE_AT_BOTTOM`), so the median row of a person or a pole is at least
8 px wide, one cell of such a head, while distant ones, 3 px wide or less, remain, as on a real camera.
"""

from __future__ import annotations

import numpy as np

from edgeseg.meta import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

CLASSES = ("road", "sidewalk", "building", "sky", "vegetation", "car", "person", "pole")
PALETTE = tuple(CITYSCAPES_PALETTE[CITYSCAPES_CLASSES.index(c)] for c in CLASSES)
ROAD, SIDEWALK, BUILDING, SKY, VEGETATION, CAR, PERSON, POLE = range(len(CLASSES))
TRAIN_SEED0 = 0
VAL_SEED0 = 1_000_000
DEFAULT_SIZE = (256, 512)
METRE_AT_BOTTOM = 0.3  # one metre at the nearest (bottom) row, as a fraction of the frame height
POLE_RADIUS_M = 0.12  # lamp posts and sign poles


class _Canvas:
    """Image + label being painted; every primitive clips itself to the frame."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = height, width, rng
        self.img = np.zeros((height, width, 3), np.float32)
        self.lab = np.zeros((height, width), np.uint8)

    def _texture(self, shape, amplitude: float, cell: int) -> np.ndarray:
        """Low-frequency multiplicative texture (blocky noise, smoothed) plus fine grain."""
        h, w = shape
        coarse = self.rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
        tex = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w]
        tex = (tex + np.roll(tex, cell // 2, 0) + np.roll(tex, cell // 2, 1)) / 3
        return 1 + amplitude * tex + 0.5 * amplitude * self.rng.standard_normal((h, w), dtype=np.float32)

    def paint(self, mask: np.ndarray, y0: int, x0: int, color, cls: int, texture: float = 0.06,
              cell: int = 8) -> None:
        """Paint ``mask`` (a boolean array placed at ``(y0, x0)``) with a textured colour and class."""
        mh, mw = mask.shape
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + mh, self.h), min(x0 + mw, self.w)
        if ya >= yb or xa >= xb:
            return
        m = mask[ya - y0:yb - y0, xa - x0:xb - x0]
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size == 0:
            return
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # shrink to the mask's bounding box
        m = m[r0:r1, c0:c1]
        ya, xa = ya + r0, xa + c0
        tex = self._texture(m.shape, texture, cell)[..., None]
        region = self.img[ya:ya + m.shape[0], xa:xa + m.shape[1]]
        np.copyto(region, np.asarray(color, np.float32) * tex, where=m[..., None])
        if cls >= 0:
            np.copyto(self.lab[ya:ya + m.shape[0], xa:xa + m.shape[1]], np.uint8(cls), where=m)

    def rect(self, y0, y1, x0, x1, color, cls, **kw) -> None:
        y0, y1, x0, x1 = int(y0), int(y1), int(x0), int(x1)
        if y1 > y0 and x1 > x0:
            self.paint(np.ones((y1 - y0, x1 - x0), bool), y0, x0, color, cls, **kw)

    def ellipse(self, cy, cx, ry, rx, color, cls, **kw) -> None:
        ry, rx = max(ry, 0.5), max(rx, 0.5)
        y0, x0 = int(np.floor(cy - ry)), int(np.floor(cx - rx))
        yy, xx = np.mgrid[y0:int(np.ceil(cy + ry)) + 1, x0:int(np.ceil(cx + rx)) + 1]
        self.paint(((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1, y0, x0, color, cls, **kw)


def _jitter(rng, color, amount: float = 18.0):
    return np.clip(np.asarray(color, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _grey(rng, low: float, high: float, tint: float = 8.0):
    v = rng.uniform(low, high)
    return np.clip(v + rng.normal(0, tint, 3), 0, 255)


def _draw_background(c: _Canvas, horizon: int) -> None:
    rng, h, w = c.rng, c.h, c.w
    overcast = rng.random() < 0.35
    top = _grey(rng, 170, 215) if overcast else np.array([rng.uniform(60, 120), rng.uniform(120, 170), 235.0])
    bottom = _grey(rng, 185, 235) if overcast else np.array([rng.uniform(150, 200), rng.uniform(190, 225), 245.0])
    t = np.linspace(0, 1, max(horizon, 1), dtype=np.float32)[:, None, None]
    c.img[:horizon] = (top * (1 - t) + bottom * t)[:, :, :]
    c.img[:horizon] *= 1 + 0.02 * rng.standard_normal((horizon, w, 1), dtype=np.float32)
    c.lab[:horizon] = SKY
    # Buildings: a skyline of facades with window grids; gaps show the sky.
    x = int(rng.uniform(-0.1, 0.05) * w)
    while x < w:
        bw = int(rng.uniform(0.08, 0.3) * w)
        if rng.random() < 0.85:
            top_y = int(horizon - rng.uniform(0.08, 0.42) * h)
            color = _grey(rng, 90, 200, 20) if rng.random() < 0.7 else _jitter(rng, (150, 110, 80), 25)
            c.rect(top_y, horizon + int(0.04 * h), x, x + bw, color, BUILDING, texture=0.05, cell=16)
            win = max(3, int(bw * rng.uniform(0.06, 0.12)))
            gap = int(win * rng.uniform(1.4, 2.2))
            win_w = max(2, int(win * 0.8))
            rows = np.arange(top_y, horizon)[:, None]
            cols = np.arange(x, x + bw)[None, :]
            grid = ((rows - top_y - gap // 2) % gap < win) & ((cols - x - gap // 2) % gap < win_w)
            grid &= (rows >= top_y + gap // 2) & (rows < horizon - win) & (cols >= x + gap // 2) & (cols < x + bw - win)
            c.paint(grid, top_y, x, color * rng.uniform(0.45, 1.35), BUILDING, texture=0.1)
        x += bw + (int(rng.uniform(0.0, 0.08) * w) if rng.random() < 0.4 else 0)


def _draw_ground(c: _Canvas, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road trapezoid to a vanishing point, sidewalks beside it. Returns per-column road edges and the
    depth scale per row (pixels per metre-ish), used to place objects."""
    rng, h, w = c.rng, c.h, c.w
    vx = rng.uniform(0.35, 0.65) * w
    half_bottom = rng.uniform(0.45, 0.8) * w
    side = rng.uniform(0.4, 0.9) * w
    rows = np.arange(h, dtype=np.float32)
    depth = np.clip((rows - horizon) / max(h - horizon, 1), 0, 1)
    left = vx - half_bottom * depth
    right = vx + half_bottom * depth
    yy = rows[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    below = yy >= horizon
    road = below & (xx >= left[:, None]) & (xx < right[:, None])
    walk = below & ~road & (xx >= (left - side * depth)[:, None]) & (xx < (right + side * depth)[:, None])
    c.paint(walk, 0, 0, _grey(rng, 120, 175, 10) * np.array([1.05, 1.0, 0.95]), SIDEWALK, texture=0.07, cell=6)
    c.paint(road, 0, 0, _grey(rng, 75, 125, 6), ROAD, texture=0.05, cell=12)
    beyond = below & ~road & ~walk  # far outside the sidewalk: hedges and grass
    c.paint(beyond, 0, 0, _jitter(rng, (70, 110, 45), 15), VEGETATION, texture=0.15, cell=4)
    # Dashed centre line (still road): dash length and width grow with depth.
    period = np.maximum(4, 40 * depth + 2)
    dashes = below & ((((yy - horizon) / period[:, None]).astype(int) % 2) == 0)
    dashes = dashes & (np.abs(xx - vx) < np.maximum(1, (4 * depth).astype(int))[:, None])
    c.paint(dashes, 0, 0, (225, 225, 215), ROAD, texture=0.02)
    return left, right, depth


def _draw_tree(c: _Canvas, base_y: float, x: float, scale: float) -> None:
    rng = c.rng
    c.rect(base_y - 2.5 * scale, base_y, x - 0.08 * scale, x + 0.08 * scale, _jitter(rng, (80, 60, 40), 10),
           VEGETATION, texture=0.1)
    green = _jitter(rng, (60, 120, 40), 25)
    for _ in range(rng.integers(3, 7)):
        c.ellipse(base_y - 2.6 * scale + rng.normal(0, 0.35) * scale, x + rng.normal(0, 0.45) * scale,
                  rng.uniform(0.4, 0.8) * scale, rng.uniform(0.5, 0.9) * scale, green, VEGETATION, texture=0.2, cell=3)


def _draw_car(c: _Canvas, base_y: float, x: float, scale: float) -> None:
    rng = c.rng
    body = _jitter(rng, [(180, 20, 20), (20, 40, 150), (230, 230, 230), (25, 25, 25), (150, 150, 160),
                         (200, 170, 40)][rng.integers(0, 6)], 15)
    w, hgt = 1.8 * scale, 0.75 * scale
    c.rect(base_y - hgt, base_y - 0.15 * scale, x - w / 2, x + w / 2, body, CAR, texture=0.04)
    c.rect(base_y - 1.25 * hgt, base_y - hgt + 1, x - w * 0.32, x + w * 0.32, body * 0.95, CAR, texture=0.04)
    c.rect(base_y - 1.18 * hgt, base_y - hgt, x - w * 0.27, x + w * 0.27, (40, 50, 60), CAR, texture=0.1)
    for wx in (x - w * 0.3, x + w * 0.3):
        c.ellipse(base_y - 0.17 * scale, wx, 0.17 * scale, 0.2 * scale, (20, 20, 20), CAR, texture=0.05)


def _draw_person(c: _Canvas, base_y: float, x: float, scale: float) -> None:
    rng = c.rng
    height = scale * rng.uniform(1.7, 2.1)
    shirt, trousers = _jitter(rng, rng.uniform(30, 220, 3), 10), _jitter(rng, (50, 50, 70), 20)
    c.rect(base_y - 0.5 * height, base_y, x - 0.14 * scale, x + 0.14 * scale, trousers, PERSON, texture=0.05)
    c.ellipse(base_y - 0.68 * height, x, 0.2 * height, 0.2 * scale, shirt, PERSON, texture=0.05)
    c.ellipse(base_y - 0.92 * height, x, 0.07 * height, 0.1 * scale, _jitter(rng, (200, 160, 130), 25), PERSON)


def _draw_pole(c: _Canvas, base_y: float, x: float, scale: float) -> None:
    rng = c.rng
    half = max(1.2, POLE_RADIUS_M * scale)
    top = base_y - rng.uniform(3.0, 5.0) * scale
    c.rect(top, base_y, x - half, x + half, _grey(rng, 60, 140, 5), POLE, texture=0.04)
    if rng.random() < 0.5:  # a sign board on the pole, labelled pole as in our class set
        c.rect(top, top + 0.4 * scale, x - 0.3 * scale, x + 0.3 * scale, _jitter(rng, (30, 80, 170), 30), POLE)


def _finish(c: _Canvas, horizon: int) -> np.ndarray:
    """Lighting, cast shadows, blur and sensor noise; returns uint8 RGB."""
    rng, h, w = c.rng, c.h, c.w
    img = c.img
    for _ in range(rng.integers(0, 4)):  # shadows across the ground
        y0 = int(rng.uniform(horizon, h))
        x0, x1 = sorted(rng.uniform(0, w, 2).astype(int))
        img[y0:min(h, y0 + int(rng.uniform(0.05, 0.3) * h)), x0:x1] *= rng.uniform(0.45, 0.75)
    gain = rng.uniform(0.6, 1.3) * (1 + rng.normal(0, 0.06, 3))
    ramp = 1 + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    img = img * gain.astype(np.float32) * ramp
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.5:  # defocus / motion blur: a small box filter
        k = int(rng.integers(1, 3))
        pad = np.pad(img, ((k, k), (k, k), (0, 0)), mode="edge")
        img = sum(pad[dy:dy + h, dx:dx + w] for dy in range(2 * k + 1) for dx in range(2 * k + 1)) / (2 * k + 1) ** 2
    img = img + rng.uniform(2, 9) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_scene(seed: int, size: tuple[int, int] = DEFAULT_SIZE, *, with_depth: bool = False):
    """Draw scene ``seed``: ``(image uint8 H×W×3 RGB, label uint8 H×W with values in [0, 8))``, and with
    ``with_depth`` a third item, the scene's depth in metres (:func:`edgeseg.data.depth.scene_depth`)."""
    h, w = size
    rng = np.random.default_rng(seed)
    c = _Canvas(h, w, rng)
    horizon = int(rng.uniform(0.3, 0.55) * h)
    _draw_background(c, horizon)
    left, right, depth = _draw_ground(c, horizon)
    objects = []  # (base_y, kind, x, scale); drawn far to near
    unit = METRE_AT_BOTTOM * h  # size of "one metre" at the bottom row
    for _ in range(rng.integers(1, 6)):
        y = rng.uniform(horizon + 4, h + 0.1 * h)
        d = depth[min(int(y), h - 1)]
        objects.append((y, "car", rng.uniform(left[min(int(y), h - 1)], right[min(int(y), h - 1)]), unit * d))
    for kind, count in (("person", rng.integers(3, 11)), ("pole", rng.integers(2, 7)), ("tree", rng.integers(0, 4))):
        for _ in range(count):
            y = horizon + 2 + (h - horizon - 2) * np.sqrt(rng.random())  # more of them near the camera
            row = min(int(y), h - 1)
            on_left = rng.random() < 0.5
            edge = left[row] if on_left else right[row]
            x = edge + (-1 if on_left else 1) * rng.uniform(0.05, 1.0) * 0.5 * w * depth[row]
            objects.append((y, kind, x, unit * depth[row]))
    draw = {"car": _draw_car, "person": _draw_person, "pole": _draw_pole, "tree": _draw_tree}
    for y, kind, x, scale in sorted(objects, key=lambda o: o[0]):
        if scale >= 1.5:
            draw[kind](c, y, x, scale)
    image = _finish(c, horizon)
    if not with_depth:
        return image, c.lab
    from edgeseg.data.depth import scene_depth

    return image, c.lab, scene_depth(c.lab, horizon, (ROAD, SIDEWALK, VEGETATION), SKY)
