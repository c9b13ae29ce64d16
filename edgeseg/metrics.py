"""Segmentation metrics from one dataset-level confusion matrix. numpy only: shared by every backend.

All scores are fractions in [0, 1]. A class that appears neither in the ground truth nor in the predictions
has an undefined IoU (``nan``) and is left out of the means, as in the Cityscapes and VOC evaluations.
"""

from __future__ import annotations

import numpy as np

from edgeseg.meta import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates ``matrix[true, pred]`` pixel counts over a whole dataset."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be positive")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.boundary: dict | None = None  # boundary F-score, when the evaluation computed it

    def update(self, pred, target) -> None:
        """Add a batch: ``pred`` and ``target`` are integer label arrays of the same shape."""
        pred = np.asarray(pred).astype(np.int64, copy=False).ravel()
        target = np.asarray(target).astype(np.int64, copy=False).ravel()
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
        valid = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        pred, target = pred[valid], target[valid]
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"prediction labels outside [0, {self.num_classes})")
        self.matrix += np.bincount(target * self.num_classes + pred,
                                   minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def merge(self, other: ConfusionMatrix | np.ndarray) -> None:
        self.matrix += other.matrix if isinstance(other, ConfusionMatrix) else np.asarray(other, dtype=np.int64)

    def compute(self) -> dict:
        return scores_from_confusion(self.matrix)


def miou_drop_points(reference_miou: float, miou: float) -> float:
    """How many mIoU points (percent, not a fraction) ``miou`` lost against ``reference_miou``, rounded to
    3 decimals: 0.8000 against 0.7900 is 1.0. Negative when ``miou`` is better. The one definition behind the
    calibration gate's ``miou_drop`` and the bench report's."""
    return round(100 * (reference_miou - miou), 3)


def scores_from_confusion(matrix: np.ndarray) -> dict:
    """Pixel accuracy, mean class accuracy, per-class IoU, mIoU and frequency-weighted IoU."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    gt = m.sum(axis=1)
    pred = m.sum(axis=0)
    total = m.sum()
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        class_acc = np.where(gt > 0, tp / gt, np.nan)
    present = ~np.isnan(iou)
    freq = gt / total if total else np.zeros_like(gt)
    return {
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "mean_acc": float(np.nanmean(class_acc)) if np.any(gt > 0) else float("nan"),
        "miou": float(np.mean(iou[present])) if present.any() else float("nan"),
        "fw_iou": float(np.sum(freq[present] * iou[present])) if total else float("nan"),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixels": int(total),
    }


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (4-connected class boundary)."""
    b = np.zeros(labels.shape, dtype=bool)
    diff_x = labels[:, 1:] != labels[:, :-1]
    diff_y = labels[1:, :] != labels[:-1, :]
    b[:, 1:] |= diff_x
    b[:, :-1] |= diff_x
    b[1:, :] |= diff_y
    b[:-1, :] |= diff_y
    return b


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)² square, by shifting (no scipy)."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[1:, 1:] |= out[:-1, :-1]
        grown[:-1, :-1] |= out[1:, 1:]
        grown[1:, :-1] |= out[:-1, 1:]
        grown[:-1, 1:] |= out[1:, :-1]
        out = grown
    return out


class BoundaryFScore:
    """Boundary F-score (Perazzi et al., CVPR 2016; as used for segmentation by Takikawa et al., ICCV 2019):
    precision and recall of predicted class boundaries within ``tolerance`` pixels of the true ones,
    accumulated over a dataset. Ignored pixels are left out of both boundary maps."""

    def __init__(self, tolerance: int = 2, ignore_index: int = IGNORE_INDEX) -> None:
        self.tolerance = tolerance
        self.ignore_index = ignore_index
        self.matched_pred = self.total_pred = self.matched_gt = self.total_gt = 0

    def update(self, pred, target) -> None:
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.ndim == 2:
            pred, target = pred[None], target[None]
        for p, t in zip(pred, target):
            keep = ~_dilate(t == self.ignore_index, 1)  # not in or next to an ignored region
            bp = _boundary(p) & keep
            bt = _boundary(t) & keep
            self.matched_pred += int((bp & _dilate(bt, self.tolerance)).sum())
            self.total_pred += int(bp.sum())
            self.matched_gt += int((bt & _dilate(bp, self.tolerance)).sum())
            self.total_gt += int(bt.sum())

    def compute(self) -> dict:
        precision = self.matched_pred / self.total_pred if self.total_pred else 0.0
        recall = self.matched_gt / self.total_gt if self.total_gt else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f": f}
