"""Label maps as pictures: colourised with a palette and blended over the frame (numpy only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IGNORE = 255


def colourise(labels: np.ndarray, palette) -> np.ndarray:
    """Label map → RGB with the palette; unknown and ignored labels are black."""
    lut = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    lut[: len(colours)] = colours
    return lut[labels]


def blend(image: np.ndarray, labels: np.ndarray, palette, alpha: float = 0.55) -> np.ndarray:
    """The colourised labels over the image; ignored pixels (255) show the image alone."""
    colour = colourise(labels, palette).astype(np.float32)
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colour
    ignored = labels == IGNORE
    mixed[ignored] = image[ignored]
    return mixed.clip(0, 255).astype(np.uint8)


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
