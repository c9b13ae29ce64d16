"""FickleNet's expanded map, window dropout, stochastic Grad-CAM, memory guard, and DSRG region growing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError
from edgeseg.weak.dsrg import crf_probabilities, grow
from edgeseg.weak.fickle import FickleClassifier, check_expansion, expand, stochastic_cams, window_mask


def _model(p=0.9, k=3, max_mb=64.0):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
    return FickleClassifier(backbone, 8, 3, width=8, k=k, p=p, max_mb=max_mb).eval()


@pytest.mark.parametrize("k", [3, 5])
def test_expansion_with_a_stride_k_conv_is_the_stride_one_conv(k):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 7)
    weight = torch.randn(3, 4, k, k)
    assert torch.equal(F.conv2d(expand(x, k), weight, stride=k), F.conv2d(x, weight, padding=k // 2))


def test_dropout_keeps_every_window_centre_and_drops_the_rest_at_rate_p():
    g = torch.Generator().manual_seed(0)
    mask = window_mask((1, 4, 30, 33), 3, 0.99, g)
    assert (mask[..., 1::3, 1::3] == 1).all()
    off = mask.clone()
    off[..., 1::3, 1::3] = -1
    rest = off[off >= 0]
    assert 0.95 < float((rest == 0).float().mean()) < 1.0 and set(rest.unique().tolist()) <= {0.0, 100.0}


def test_passes_are_stochastic_but_the_same_seed_gives_the_same_maps():
    model = _model()
    x = torch.randn(1, 3, 32, 48)
    f = model.features(x).detach()
    a = model.head(f, torch.Generator().manual_seed(1))
    b = model.head(f, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)
    assert torch.equal(a, model.head(f, torch.Generator().manual_seed(1)))
    tags = np.array([True, True, False])
    one = stochastic_cams(model, x, tags, 3, seed=(0, 5))
    assert torch.equal(one, stochastic_cams(model, x, tags, 3, seed=(0, 5)))
    assert not torch.equal(one, stochastic_cams(model, x, tags, 3, seed=(0, 6)))
    assert one.shape == (1, 3, 32, 48) and (one[0, 2] == 0).all() and one.max() <= 1


def test_the_union_of_more_passes_covers_at_least_a_single_pass():
    model = _model()
    x = torch.randn(1, 3, 32, 48)
    tags = np.array([True, True, True])
    single = stochastic_cams(model, x, tags, 1, seed=3)
    many = stochastic_cams(model, x, tags, 6, seed=3)
    assert (many >= single - 1e-6).all() and (many > single + 1e-3).any()
    for t in (0.2, 0.5):
        assert ((many >= t) | ~(single >= t)).all()


def test_the_memory_guard_refuses_before_allocating_and_names_what_fits():
    check_expansion((1, 8, 10, 10), 3, 1.0)
    with pytest.raises(EdgesegError, match=r"would take 12 MB, over the limit of 1 MB.*up to about 72x144 fits"):
        check_expansion((1, 64, 32, 64), 5, 1.0, (256, 512))
    model = _model(max_mb=0.01)
    with pytest.raises(EdgesegError, match="--max-expand-mb"):
        model(torch.randn(1, 3, 64, 64))


def test_region_growing_follows_connectivity_class_and_threshold():
    seeds = np.full((1, 7), 255, np.uint8)
    seeds[0, 0] = 0
    probs = np.zeros((3, 1, 7), np.float32)
    probs[0, 0] = [1, 0.9, 0.9, 0.5, 0.95, 0.1, 0.1]  # grows to 1-2; 3 below th; 4 cut off from the seed
    probs[1, 0] = [0, 0.1, 0.1, 0.5, 0.05, 0.9, 0.1]  # class 1 confident at 5 but has no seed
    probs[2, 0] = [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8]
    tags = np.array([True, True, False])
    assert grow(seeds, probs, tags).tolist() == [[0, 0, 0, 255, 255, 255, 255]]
    other = probs.copy()
    other[:, 0, 3] = [0.05, 0.9, 0.0]  # an unseeded class's pixel does not carry class 0 across to pixel 4
    assert grow(seeds, other, tags).tolist() == [[0, 0, 0, 255, 255, 255, 255]]
    bg = seeds.copy()
    bg[0, 6] = 2
    probs[2, 0] = [0, 0, 0, 0, 0, 0.95, 0.98]
    probs[1, 0, 5] = 0.0
    grown = grow(bg, probs, np.array([True, True, False]), background=2)
    assert grown[0, 5] == 255  # background at 0.95 < th_bg 0.99
    probs[2, 0, 5] = 0.995
    assert grow(bg, probs, np.array([True, True, False]), background=2)[0, 5] == 2
    again = grow(seeds, probs, tags)
    assert np.array_equal(grow(seeds, probs, tags), again)  # from the original seeds every time


@pytest.mark.parametrize("crf", ["conv", "dense"])
def test_crf_probabilities_run_and_stay_on_the_tagged_classes(crf):
    if crf == "dense":
        pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    maps = rng.random((3, 16, 24)).astype(np.float32)
    probs = crf_probabilities(maps, image, np.array([True, False, True]), crf)
    assert probs.shape == (3, 16, 24) and np.allclose(probs.sum(0), 1, atol=1e-4) and probs[1].max() < 1e-3


def test_pseudo_label_ficklenet_end_to_end_and_guard_refusal(tmp_path, cli_here):
    base = ("pseudo-label", "--method", "ficklenet", "--data", "synthetic:1", "--train-steps", "1", "--batch-size",
            "2", "--output-stride", "32", "--width", "8", "--n-maps", "2")
    r = cli_here(*base, "--out", str(tmp_path / "fn"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 1
    assert json.loads((tmp_path / "fn" / "seeds.json").read_text())["settings"]["crf"] == "conv"
    r = cli_here(*base, "--out", str(tmp_path / "big"), "--max-expand-mb", "0.001")
    assert r.returncode == 1 and "would take" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli_here(*base, "--out", str(tmp_path / "even"), "--window", "4")
    assert r.returncode == 1 and "odd" in r.stderr and not (tmp_path / "even").exists()
