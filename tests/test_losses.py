import pytest
import torch
import torch.nn.functional as F

from edgeseg.train.losses import (
    LabelRelaxation,
    OhemCrossEntropy,
    SegmentationLoss,
    build_criterion,
    pairwise_distillation,
    pixelwise_distillation,
)
from edgeseg.train.schedule import poly_warmup_factor


def _batch(c=4):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, c, 6, 6, generator=g)
    labels = torch.randint(0, c, (2, 6, 6), generator=g)
    labels[0, 0, :] = 255
    return logits, labels


def test_ce_ignores_255():
    logits, labels = _batch()
    ce = build_criterion("ce", 4)(logits, labels)
    valid = labels != 255
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], labels[valid])
    assert ce.item() == pytest.approx(manual.item(), rel=1e-6)


def test_ohem_keeps_only_hard_pixels():
    logits, labels = _batch()
    ohem = OhemCrossEntropy(threshold=0.7, min_kept_ratio=0.0)(logits, labels)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")[labels != 255]
    hard = per_pixel[per_pixel > -torch.log(torch.tensor(0.7))]
    assert ohem.item() == pytest.approx(hard.mean().item(), rel=1e-6)
    assert ohem.item() >= build_criterion("ce", 4)(logits, labels).item()


def test_label_relaxation_equals_ce_inside_uniform_regions():
    logits = torch.randn(1, 3, 5, 5)
    labels = torch.full((1, 5, 5), 2)
    relax = LabelRelaxation(3)(logits, labels)
    assert relax.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_label_relaxation_forgives_boundary_confusion():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[..., 2:] = 1
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0, :, 1:3] = -5  # predicts class 1 a pixel too early on the boundary
    logits[:, 1, :, 1:3] = 5
    assert LabelRelaxation(2)(logits, labels) < F.cross_entropy(logits, labels)


def test_distillation_terms_vanish_when_student_equals_teacher():
    x = torch.randn(2, 5, 8, 8)
    assert pixelwise_distillation(x, x, temperature=2.0).abs().item() < 1e-6
    assert pairwise_distillation(x, x).item() < 1e-10
    assert pixelwise_distillation(x, torch.randn(2, 5, 8, 8)).item() > 0


def test_aux_weighting():
    logits, labels = _batch()
    loss = SegmentationLoss(build_criterion("ce", 4), aux_weight=0.4)
    total, parts = loss((logits, logits * 2), labels)
    assert total.item() == pytest.approx((parts["loss_main"] + 0.4 * parts["loss_aux0"]).item())


def test_class_weights_change_the_loss():
    logits, labels = _batch()
    assert build_criterion("ce", 4, [1, 1, 1, 5])(logits, labels) != build_criterion("ce", 4)(logits, labels)
    with pytest.raises(ValueError):
        build_criterion("ce", 4, [1, 2])


def test_poly_schedule_with_warmup():
    assert poly_warmup_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert poly_warmup_factor(10, 100, warmup=10) == pytest.approx(1.0)
    assert poly_warmup_factor(100, 100, warmup=10) == pytest.approx(0.0)
    assert 0 < poly_warmup_factor(55, 100, warmup=10) < 1
