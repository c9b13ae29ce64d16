"""CAM / multi-dilated CAM pseudo-labels: maps, fusion, seeds, the classifier, ``edgeseg pseudo-label``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgeseg.data import open_dataset
from edgeseg.data.synthetic_source import SyntheticSource
from edgeseg.data.weak import WeakLabels
from edgeseg.weak.cam import CAMClassifier
from edgeseg.weak.mdc import MDC_DILATIONS, fuse
from edgeseg.weak.seeds import SeedScore, seeds_from_maps
from edgeseg.weak.train import tagged_crops, train_classifier


def _tiny(num_classes=3, dilations=(1,), channels=8):
    backbone = nn.Sequential(nn.Conv2d(3, channels, 3, 2, 1), nn.ReLU())
    return CAMClassifier(backbone, channels, num_classes, dilations, width=8)


def test_cam_shapes_blocks_and_normalisation():
    torch.manual_seed(0)
    model = _tiny(4, MDC_DILATIONS).eval()
    x = torch.randn(2, 3, 64, 128)
    assert [s.shape for s in model(x)] == [(2, 4)] * 4
    cams = model.cams(x, scales=(1.0, 0.5))
    assert cams.shape == (2, 4, 4, 64, 128) and cams.min() >= 0
    peaks = cams.flatten(-2).amax(-1)
    assert torch.all((peaks > 0.999) | (peaks == 0)) and peaks.max() <= 1


def test_the_spatial_mean_of_a_cam_is_its_score_without_bias():
    torch.manual_seed(1)
    model = _tiny(3, (1, 3)).eval()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        for scores, cam, cls in zip(model(x), model.raw_cams(x), model.classifiers):
            assert torch.allclose(cam.mean(dim=(2, 3)), scores - cls.bias, atol=1e-5)


def test_mdc_fusion_is_the_d1_map_plus_the_mean_of_the_dilated_ones():
    h = torch.zeros(4, 1, 1, 3)
    h[0, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    h[1, 0, 0] = torch.tensor([0.0, 0.6, 0.0])
    h[2, 0, 0] = torch.tensor([0.0, 0.3, 0.9])
    h[3, 0, 0] = torch.tensor([0.0, 0.0, 0.3])
    assert torch.allclose(fuse(h)[0, 0], torch.tensor([1.0, 0.3, 0.4]))
    assert torch.equal(fuse(h[:1]), h[0])


def test_seeds_take_the_confident_tagged_winner_and_ignore_the_rest():
    maps = np.array([[[0.9, 0.5, 0.2, 0.9]],    # class 0
                     [[0.1, 0.45, 0.1, 0.0]],   # class 1
                     [[0.0, 0.0, 0.0, 1.0]]], np.float32)  # class 2: untagged
    tags = np.array([True, True, False])
    seeds = seeds_from_maps(maps, tags, fg=0.3, margin=0.1)
    # confident; too close to the runner-up; below fg; the untagged class loses to the tagged winner
    assert seeds.tolist() == [[0, 255, 255, 0]]
    assert (seeds_from_maps(maps, np.zeros(3, bool)) == 255).all()
    one = seeds_from_maps(maps, np.array([False, True, False]), fg=0.3, margin=0.1)
    assert one.tolist() == [[255, 1, 255, 255]]


def test_seed_score_counts_precision_recall_and_ignores():
    truth = np.array([[0, 0, 1, 1, 255]], np.uint8)
    seeds = np.array([[0, 255, 0, 1, 1]], np.uint8)
    score = SeedScore(2)
    score.update(seeds, truth)
    q = score.compute(["a", "b"])
    assert q["precision"] == pytest.approx(2 / 3) and q["coverage"] == pytest.approx(2 / 4)
    assert q["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "iou": pytest.approx(1 / 3, abs=1e-6)}
    assert q["per_class"]["b"]["precision"] == 1.0 and q["per_class"]["b"]["recall"] == 0.5


def test_the_classifier_learns_a_trivially_separable_case():
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(8):  # class 1 = a bright square somewhere in half the images; class 0 everywhere
        img = rng.integers(0, 30, (32, 32, 3), dtype=np.uint8)
        lab = np.zeros((32, 32), np.uint8)
        if i % 2:
            y, x = rng.integers(0, 20, 2)
            img[y:y + 12, x:x + 12] = 250
            lab[y:y + 12, x:x + 12] = 1
        images.append(img)
        labels.append(lab)
    crops = tagged_crops(WeakLabels("image", ["dark", "bright"]), labels)
    torch.manual_seed(0)
    model = _tiny(2)
    losses = train_classifier(model, images, crops, steps=60, batch_size=8, lr=1e-2)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    from edgeseg.weak.train import to_tensor

    with torch.no_grad():
        scores = model(to_tensor(np.stack(images)))[0][:, 1]
    assert (scores[1::2].min() > scores[0::2].max())  # every bright image above every dark one
    cam = model.cams(to_tensor(images[1]))[0, 0, 1]
    assert cam[labels[1] == 1].mean() > cam[labels[1] == 0].mean()


def test_crop_tags_use_only_full_tiles_and_name_the_classes_present():
    source = SyntheticSource("train", 2)
    labels = [source[i][1] for i in range(2)]
    crops = tagged_crops(WeakLabels("crop:64x128", source.classes), labels)
    assert crops and all((c.y1 - c.y0, c.x1 - c.x0) == (64, 128) for c in crops)
    for c in crops:
        present = np.unique(labels[c.index][c.y0:c.y1, c.x0:c.x1])
        assert np.array_equal(np.flatnonzero(c.tags), present[present < 8])


@pytest.mark.parametrize("method", ["cam", "mdc"])
def test_pseudo_label_writes_a_folder_dataset_that_training_accepts(tmp_path, cli_here, method):
    from edgeseg.train.config import TrainConfig
    from edgeseg.train.extras import open_sources

    out = tmp_path / method
    r = cli_here("pseudo-label", "--method", method, "--data", "synthetic:2", "--out", str(out), "--train-steps",
                 "2", "--batch-size", "2", "--output-stride", "32", "--width", "8", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["images"] == 2 and summary["method"] == method
    q = summary["quality"]
    assert set(q["per_class"]) == set(SyntheticSource().classes) and 0 <= q["coverage"] <= 1
    spec = f"folder:{out / 'images'},{out / 'labels'}"
    written, dense = open_dataset(spec), SyntheticSource("train", 2)
    score = SeedScore(8)
    for i in range(2):
        image, seeds = written[i]
        assert np.array_equal(image, dense[i][0])
        present = set(np.unique(dense[i][1]).tolist())
        assert set(np.unique(seeds).tolist()) <= present | {255}  # no seed for an untagged class
        score.update(seeds, dense[i][1])
    assert score.compute()["precision"] == pytest.approx(q["precision"])
    document = json.loads((out / "seeds.json").read_text())
    assert document["settings"]["dilations"] == ([1, 3, 6, 9] if method == "mdc" else [1])
    train, _ = open_sources(TrainConfig(data="synthetic:2", extra_train_data=[spec]))
    assert len(train) == 4


def test_pseudo_label_refusals_are_one_line(tmp_path, cli_here):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    base = ("pseudo-label", "--method", "cam", "--data", "synthetic:2", "--train-steps", "1")
    for extra, needle in ((("--out", str(foreign)), "refusing"),
                          (("--out", str(tmp_path / "a"), "--tags", "points"), "image or crop tags"),
                          (("--out", str(tmp_path / "b"), "--tags", "crop:512x1024"), "no full crop:512x1024"),
                          (("--out", str(tmp_path / "c"), "--tags", "crop:x"), "tile size")):
        r = cli_here(*base, *extra)
        assert r.returncode == 1 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (foreign / "notes.txt").exists() and not (tmp_path / "a").exists()
