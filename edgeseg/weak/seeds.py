"""Seeds from localisation maps, and their quality against ground truth.

Street scenes have no background class and no saliency model, so a pixel's seed is the argmax over the image's
*tagged* classes of the maps, accepted only when the winner reaches ``fg`` and beats the runner-up by ``margin``;
every other pixel is ignore (255). An untagged class never gets a seed.
"""

from __future__ import annotations

import numpy as np

from edgeseg.meta import IGNORE_INDEX


def seeds_from_maps(maps: np.ndarray, tags: np.ndarray, fg: float = 0.3, margin: float = 0.1,
                    ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """uint8 (H, W) seeds from maps (C, H, W) in [0, 1] and the image's tags (C,) bool."""
    maps = np.asarray(maps, np.float32)
    tags = np.asarray(tags, bool)
    out = np.full(maps.shape[1:], ignore_index, np.uint8)
    if not tags.any():
        return out
    masked = np.where(tags[:, None, None], maps, -np.inf)
    order = np.argsort(-masked, axis=0, kind="stable")
    best = order[0]
    top = np.take_along_axis(masked, order[:1], axis=0)[0]
    second = np.take_along_axis(masked, order[1:2], axis=0)[0] if tags.sum() > 1 else np.zeros_like(top)
    second = np.where(np.isfinite(second), second, 0.0)
    accept = (top >= fg) & (top - second >= margin)
    out[accept] = best[accept]
    return out


class SeedScore:
    """Accumulates seed quality over images: per class the seeded pixels, the correct ones and the ground-truth
    pixels. Precision = correct / seeded; recall (coverage of the class) = correct / ground truth; IoU counts every
    unseeded ground-truth pixel as missed."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.seeded = np.zeros(num_classes, np.int64)
        self.correct = np.zeros(num_classes, np.int64)
        self.truth = np.zeros(num_classes, np.int64)
        self.pixels = 0

    def update(self, seeds: np.ndarray, truth: np.ndarray) -> None:
        valid = truth != self.ignore_index
        s, t = seeds[valid].astype(np.int64), truth[valid].astype(np.int64)
        has = s != self.ignore_index
        k = self.num_classes
        self.seeded += np.bincount(s[has], minlength=k)[:k]
        self.correct += np.bincount(s[has & (s == t)], minlength=k)[:k]
        self.truth += np.bincount(t[t < k], minlength=k)[:k]
        self.pixels += int(valid.sum())

    def compute(self, classes: list[str] | None = None) -> dict:
        """Overall precision, coverage (seeded and correct / labelled), seeded fraction, mIoU, and per class
        precision, recall and IoU (``None`` where undefined)."""
        names = classes or [str(i) for i in range(self.num_classes)]

        def ratio(a, b):
            return round(float(a) / float(b), 6) if b else None

        fp = self.seeded - self.correct
        fn = self.truth - self.correct
        ious = [ratio(self.correct[c], self.correct[c] + fp[c] + fn[c]) for c in range(self.num_classes)]
        present = [v for c, v in enumerate(ious) if v is not None and self.truth[c]]
        return {
            "precision": ratio(self.correct.sum(), self.seeded.sum()),
            "coverage": ratio(self.correct.sum(), self.truth.sum()),
            "seeded_fraction": ratio(self.seeded.sum(), self.pixels),
            "miou": round(float(np.mean(present)), 6) if present else None,
            "per_class": {names[c]: {"precision": ratio(self.correct[c], self.seeded[c]),
                                     "recall": ratio(self.correct[c], self.truth[c]), "iou": ious[c]}
                          for c in range(self.num_classes)},
        }
