import math

import numpy as np
import pytest

from edgeseg.metrics import BoundaryFScore, ConfusionMatrix, scores_from_confusion


def test_hand_computed_example():
    # 3 classes; ignore pixels (255) are skipped.
    target = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows = truth, cols = prediction
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    s = cm.compute()
    assert s["pixels"] == 7
    assert s["pixel_acc"] == pytest.approx(5 / 7)
    # IoU: c0 = 2/(3+3-2) = 0.5, c1 = 2/(2+3-2) = 2/3, c2 = 1/(2+1-1) = 0.5
    assert s["per_class_iou"] == pytest.approx([0.5, 2 / 3, 0.5])
    assert s["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert s["mean_acc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert s["fw_iou"] == pytest.approx(3 / 7 * 0.5 + 2 / 7 * 2 / 3 + 2 / 7 * 0.5)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 1]))
    s = cm.compute()
    assert s["per_class_iou"][2] is None and s["per_class_iou"][3] is None
    assert s["miou"] == 1.0


def test_accumulates_over_batches_and_merges():
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update([0, 1], [0, 0])
    b.update([1, 1], [1, 1])
    a.merge(b)
    assert a.matrix.tolist() == [[1, 1], [0, 2]]


def test_bad_predictions_are_rejected():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError):
        cm.update([0, 5], [0, 1])
    with pytest.raises(ValueError):
        cm.update([0], [0, 1])


def test_empty_matrix_gives_nan():
    assert math.isnan(scores_from_confusion(np.zeros((2, 2)))["miou"])


def test_boundary_fscore_perfect_shifted_and_tolerance():
    t = np.zeros((20, 20), np.int64)
    t[:, 10:] = 1
    perfect = BoundaryFScore(tolerance=0)
    perfect.update(t, t)
    assert perfect.compute()["boundary_f"] == 1.0
    shifted = np.zeros_like(t)
    shifted[:, 13:] = 1
    strict, loose = BoundaryFScore(tolerance=1), BoundaryFScore(tolerance=3)
    strict.update(shifted, t)
    loose.update(shifted, t)
    assert strict.compute()["boundary_f"] < 0.5
    assert loose.compute()["boundary_f"] == 1.0
