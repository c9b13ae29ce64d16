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


def legend_image(classes: list[str], palette, swatch: int = 16) -> np.ndarray:
    """A class legend (uint8 RGB): one row per class, its palette colour and its name."""
    from PIL import ImageDraw

    width = swatch * 2 + 8 * max((len(c) for c in classes), default=1)
    image = Image.new("RGB", (width, swatch * len(classes)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3) if len(palette) else np.zeros((0, 3), np.uint8)
    for k, name in enumerate(classes):
        colour = tuple(int(v) for v in colours[k]) if k < len(colours) else (0, 0, 0)
        draw.rectangle([2, k * swatch + 2, swatch - 2, (k + 1) * swatch - 2], fill=colour, outline=(0, 0, 0))
        draw.text((swatch + 4, k * swatch + 2), name, fill=(0, 0, 0))
    return np.asarray(image)


def write_legend(path: Path, classes: list[str], palette) -> None:
    """The class legend as a PNG (shipped in bundles with ``overlay`` / ``color`` outputs)."""
    Image.fromarray(legend_image(classes, palette)).save(path, format="PNG", optimize=True)
