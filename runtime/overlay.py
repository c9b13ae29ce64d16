"""Label maps as pictures: colourised with a palette and blended over the frame (numpy only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IGNORE = 255
DEFAULT_ALPHA = 0.55  # the overlay's weight of the class colour (host blend and the in-graph ``overlay`` output)


def blend_tables(palette, alpha: float = DEFAULT_ALPHA, bgr: bool = False) -> tuple[np.ndarray, ...]:
    """The lookup tables of :func:`blend`, indexed by label (256 entries, float32): ``keep`` (weight of the
    image), ``weight`` (weight of the colour) and ``colour`` (256×3, in the frame's channel order). Unknown
    labels blend with black; the ignore label keeps the image (weights 1 and 0). The deploy graph's ``overlay``
    output gathers these same tables, so host and graph blend alike."""
    colour = colourise(np.arange(256, dtype=np.uint8), palette).astype(np.float32)
    if bgr:
        colour = colour[:, ::-1].copy()
    keep = np.full((256, 1), 1 - alpha, np.float32)
    weight = np.full((256, 1), alpha, np.float32)
    keep[IGNORE], weight[IGNORE] = 1.0, 0.0
    return keep, weight, colour


def colourise(labels: np.ndarray, palette) -> np.ndarray:
    """Label map → RGB with the palette; unknown and ignored labels are black."""
    lut = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    lut[: len(colours)] = colours
    return lut[labels]


def blend(image: np.ndarray, labels: np.ndarray, palette, alpha: float = DEFAULT_ALPHA,
          bgr: bool = False) -> np.ndarray:
    """The colourised labels over the image (in RGB, or BGR with ``bgr``); ignored pixels (255) show the image
    alone. Rounds down, as the in-graph ``overlay`` output does."""
    keep, weight, colour = blend_tables(palette, alpha, bgr)
    mixed = keep[labels] * image.astype(np.float32) + weight[labels] * colour[labels]
    return np.floor(mixed).clip(0, 255).astype(np.uint8)


def save_label_png(path: Path, labels: np.ndarray, palette: list) -> None:
    """A palette PNG: pixel values are the class indices, colours come from ``palette`` (255 = black)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(labels, np.uint8)).convert("P")
    flat = [v for colour in palette for v in colour][:768]
    image.putpalette(flat + [0] * (768 - len(flat)))
    image.save(path, format="PNG", optimize=True)


def load_label_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im if im.mode in ("P", "L") else im.convert("L"), np.uint8)


def _font(size: int):
    """Pillow's built-in font at ``size`` pixels (a fixed-size bitmap font where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError, ImportError):
        return ImageFont.load_default()


def _colours(palette) -> np.ndarray:
    return np.asarray(palette, np.uint8).reshape(-1, 3) if len(palette) else np.zeros((0, 3), np.uint8)


def _colour(colours: np.ndarray, k: int) -> tuple[int, int, int]:
    if k >= len(colours):
        return (0, 0, 0)
    r, g, b = (int(v) for v in colours[k])
    return (r, g, b)


def legend_image(classes: list[str], palette, swatch: int = 16) -> np.ndarray:
    """A class legend (uint8 RGB): one row per class, its palette colour and its name."""
    from PIL import ImageDraw

    font = _font(max(10, swatch - 4))
    width = swatch + 8 + int(max((font.getlength(c) for c in classes), default=8)) + 4
    image = Image.new("RGB", (width, swatch * len(classes)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colours = _colours(palette)
    for k, name in enumerate(classes):
        draw.rectangle([2, k * swatch + 2, swatch - 2, (k + 1) * swatch - 2], fill=_colour(colours, k),
                       outline=(0, 0, 0))
        draw.text((swatch + 4, k * swatch + swatch // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(image)


def write_legend(path: Path, classes: list[str], palette) -> None:
    """The class legend as a PNG (shipped in bundles with ``overlay`` / ``color`` outputs, and in reports)."""
    Image.fromarray(legend_image(classes, palette)).save(path, format="PNG", optimize=True)


FEW_CLASSES = 12  # up to this many classes a legend strip names them all; beyond, only those in the frame
LEGEND_MIN_HEIGHT = 96  # frames shorter than this get no strip: it would cover too much of them
LEGEND_MAX_SHARE = 0.2  # the strip takes at most this share of the frame's height, at its bottom edge


class LegendStrip:
    """A compact class legend drawn along the bottom edge of overlay frames (videos, windows): a translucent
    band of colour swatches and class names, never more than :data:`LEGEND_MAX_SHARE` of the frame's height,
    so the centre of the picture stays untouched. It names every class when there are at most
    :data:`FEW_CLASSES`, else the classes present in the frame (and ``+N`` for any that do not fit)."""

    def __init__(self, classes: list[str], palette) -> None:
        self.classes, self.colours = list(classes), _colours(palette)
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def shown(self, labels: np.ndarray) -> tuple[int, ...]:
        """The class indices the strip names for a frame with these labels."""
        if len(self.classes) <= FEW_CLASSES:
            return tuple(range(len(self.classes)))
        present = np.unique(labels)
        return tuple(int(k) for k in present if k < len(self.classes))

    def render(self, ids: tuple[int, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The strip for frames of ``height`` × ``width``: (RGB pixels, alpha in [0, 1]) of its rows, or None
        when the frame is too small to carry one."""
        if height < LEGEND_MIN_HEIGHT or not ids:
            return None
        key = (ids, width, height)
        if key not in self._cache:
            self._cache[key] = self._draw(ids, width, height)
        return self._cache[key]

    def _draw(self, ids: tuple[int, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        from PIL import ImageDraw

        size = max(10, height // 40)
        font, line, pad = _font(size), size + size // 2, size // 2
        max_rows = max(1, int(height * LEGEND_MAX_SHARE - pad) // line)
        placed: list[tuple[int | None, int, int, str]] = []
        x, row = pad, 0
        for n, k in enumerate(ids):
            entry = size + pad // 2 + int(font.getlength(self.classes[k])) + pad
            if x + entry > width - pad and x > pad:
                row, x = row + 1, pad
            if row >= max_rows or (row == max_rows - 1 and n < len(ids) - 1
                                   and x + entry + font.getlength(f"+{len(ids) - n}") > width - pad):
                placed.append((None, x, min(row, max_rows - 1), f"+{len(ids) - n}"))
                break
            placed.append((k, x, row, self.classes[k]))
            x += entry
        rows = min(max_rows, max(r for _, _, r, _ in placed) + 1)
        band = Image.new("RGBA", (width, rows * line + pad), (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        draw.rectangle([0, 0, width, band.height], fill=(0, 0, 0, 150))
        for cls, left, r, text in placed:
            top = pad // 2 + r * line + (line - size) // 2
            if cls is not None:
                draw.rectangle([left, top, left + size - 1, top + size - 1], fill=(*_colour(self.colours, cls), 255),
                               outline=(255, 255, 255, 255))
                left += size + pad // 2
            draw.text((left, top + size // 2), text, fill=(255, 255, 255, 255), font=font, anchor="lm")
        pixels = np.asarray(band)
        return pixels[:, :, :3].copy(), pixels[:, :, 3:].astype(np.float32) / 255.0

    def draw(self, picture: np.ndarray, labels: np.ndarray, bgr: bool = False) -> np.ndarray:
        """``picture`` (uint8 H×W×3, BGR with ``bgr``) with the strip along its bottom edge (a new array;
        unchanged when the frame is too small)."""
        height, width = picture.shape[:2]
        strip = self.render(self.shown(labels), width, height)
        if strip is None:
            return picture
        rgb, alpha = strip
        if bgr:
            rgb = rgb[:, :, ::-1]
        out = picture.copy()
        bottom = out[height - rgb.shape[0]:]
        bottom[:] = (alpha * rgb + (1 - alpha) * bottom).astype(np.uint8)
        return out
