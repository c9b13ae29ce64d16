"""A deliberately weak "model" for CRF studies: blurred, noisy class scores made from the ground truth.

A real network at output stride 8 knows roughly *what* is where but not exactly where the boundary runs: its
scores are smooth at 1/8 resolution and wrong in places. ``weak_logits`` imitates that from a label map: the
one-hot map is area-averaged on a grid ``downsample`` times coarser, upsampled bilinearly (soft, misplaced
boundaries), turned into logits with ``confidence`` and corrupted with Gaussian noise that is itself smooth
(blobs of wrong class, not salt-and-pepper). numpy only.
"""

from __future__ import annotations

import numpy as np


def _resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) → (C, H, W), half-pixel centres (as torch's bilinear with align_corners=False)."""
    c, h, w = x.shape
    out_h, out_w = size

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    rows = x[:, y0] * (1 - fy)[None, :, None] + x[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def _coarse(x: np.ndarray, factor: int) -> np.ndarray:
    c, h, w = x.shape
    return x[:, : h - h % factor, : w - w % factor].reshape(c, h // factor, factor, w // factor, factor).mean((2, 4))


def weak_logits(labels: np.ndarray, num_classes: int, rng: np.random.Generator, *, downsample: int = 8,
                confidence: float = 4.0, noise: float = 1.5, ignore_index: int = 255) -> np.ndarray:
    """(C, H, W) float32 logits for an (H, W) label map; ignored pixels get a uniform score."""
    h, w = labels.shape
    onehot = np.zeros((num_classes, h, w), np.float32)
    valid = labels != ignore_index
    ys, xs = np.nonzero(valid)
    onehot[labels[valid], ys, xs] = 1.0
    onehot[:, ~valid] = 1.0 / num_classes
    soft = _resize_bilinear(_coarse(onehot, downsample), (h, w))
    blobs = _resize_bilinear(rng.normal(0.0, noise, (num_classes, max(1, h // downsample),
                                                        max(1, w // downsample))).astype(np.float32), (h, w))
    return (confidence * soft + blobs).astype(np.float32)

