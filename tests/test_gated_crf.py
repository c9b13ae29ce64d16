"""The gated CRF loss: against a brute-force double loop, its trivial minimiser, edge awareness, the gate, the
units of σ_rgb; the refusal of losses that do not fit sparse labels; the loss in a training run."""

import json

import numpy as np
import pytest
import torch

from edgeseg.errors import EdgesegError
from edgeseg.meta import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.train.config import TrainConfig, apply_overrides
from edgeseg.train.gated_crf import GatedCRFLoss


def brute_force(logits, images, valid, radius, stride, sigma_xy, sigma_rgb, gate):
    """The loss by its definition, one pair of cells at a time (numpy, float64)."""
    prob = torch.softmax(logits.double(), 1).numpy()
    n, c, hh, ww = prob.shape
    h, w = hh // stride, ww // stride

    def pool(a):  # (n, ch, hh, ww) -> cell means
        return a[:, :, :h * stride, :w * stride].reshape(a.shape[0], a.shape[1], h, stride, w, stride).mean((3, 5))

    p, rgb = pool(prob), pool(images[:, :3].double().numpy())
    cell_valid = pool(valid[:, None].double().numpy())[:, 0] >= 1.0
    total = 0.0
    for b in range(n):
        for y in range(h):
            for x in range(w):
                for dy in range(-radius, radius + 1):
                    for dx in range(-radius, radius + 1):
                        v = (y + dy, x + dx)
                        if (dy, dx) == (0, 0) or not (0 <= v[0] < h and 0 <= v[1] < w):
                            continue
                        if not cell_valid[b, v[0], v[1]] or (gate == "both" and not cell_valid[b, y, x]):
                            continue
                        d_xy = (dy * stride) ** 2 + (dx * stride) ** 2
                        d_rgb = ((rgb[b, :, y, x] - rgb[b, :, v[0], v[1]]) ** 2).sum()
                        k = np.exp(-0.5 * d_xy / sigma_xy ** 2 - 0.5 * d_rgb / sigma_rgb ** 2)
                        total += k * (1.0 - (p[b, :, y, x] * p[b, :, v[0], v[1]]).sum())
    return total / max(cell_valid.sum(), 1)


@pytest.mark.parametrize("gate", ["both", "src"])
def test_matches_a_brute_force_double_loop(gate):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 12, 14, generator=g) * 2
    images = torch.randn(2, 3, 12, 14, generator=g) * 0.3
    valid = (torch.rand(2, 12, 14, generator=g) > 0.15).float()
    valid[:, :, -4:] = 0.0  # padding on the right, as a crop pads
    args = dict(radius=2, stride=2, sigma_xy=3.0, sigma_rgb=0.5, gate=gate)
    got = GatedCRFLoss(**args)(logits, images, valid).item()
    expected = brute_force(logits, images, valid, **args)
    assert expected > 0.05
    assert got == pytest.approx(expected, rel=1e-5)


def test_is_zero_for_a_constant_prediction_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 16, 16, generator=g)
    constant = torch.full((2, 4, 16, 16), -50.0)
    constant[:, 2] = 50.0
    loss = GatedCRFLoss(radius=3, stride=2)
    assert loss(constant, images).item() == 0.0
    assert loss(torch.randn(2, 4, 16, 16, generator=g), images).item() > 0.01


def _two_colour_image(edge: int, width: int = 32, height: int = 16) -> torch.Tensor:
    rgb = np.zeros((height, width, 3), np.float32)
    rgb[:, :edge] = (40, 60, 50)
    rgb[:, edge:] = (200, 180, 190)
    normalised = (rgb / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(normalised.astype(np.float32)).permute(2, 0, 1)[None]


def _split_prediction(column: int, width: int = 32, height: int = 16) -> torch.Tensor:
    logits = torch.full((1, 2, height, width), -20.0)
    logits[:, 0, :, :column] = 20.0
    logits[:, 1, :, column:] = 20.0
    return logits


def test_follows_image_edges():
    """A prediction that changes class on the image's edge costs less than one that changes three pixels off it."""
    image = _two_colour_image(16)
    loss = GatedCRFLoss(radius=4, stride=1, sigma_xy=6.0, sigma_rgb=0.1)
    aligned, crossing = loss(_split_prediction(16), image).item(), loss(_split_prediction(19), image).item()
    assert aligned < 0.1 * crossing, (aligned, crossing)


@pytest.mark.parametrize("gate", ["both", "src"])
def test_gate(gate):
    """gate=both: what the prediction is on padded pixels changes neither the loss nor the gradient anywhere on
    the image. gate=src (the paper's code): padded cells send nothing but still receive, so it changes both."""
    g = torch.Generator().manual_seed(2)
    images = torch.randn(1, 3, 16, 32, generator=g)
    valid = torch.ones(1, 16, 32)
    valid[:, :, 24:] = 0.0
    images[:, :, :, 24:] = 0.0  # padding is black, as RandomCrop pads
    base = torch.randn(1, 3, 16, 32, generator=g)
    other = base.clone()
    other[:, :, :, 24:] = torch.randn(1, 3, 16, 8, generator=g) * 5
    loss = GatedCRFLoss(radius=3, stride=4, sigma_xy=12.0, gate=gate)
    values, grads = [], []
    for logits in (base, other):
        logits = logits.clone().requires_grad_(True)
        value = loss(logits, images, valid)
        value.backward()
        values.append(value.item())
        grads.append(logits.grad[:, :, :, :24].clone())
    same = values[0] == pytest.approx(values[1], abs=1e-7) and torch.allclose(grads[0], grads[1], atol=1e-8)
    assert same == (gate == "both"), (values, (grads[0] - grads[1]).abs().max())


def test_sigma_rgb_is_in_normalised_units():
    """σ_rgb = 0.1 on the ImageNet-normalised input is a per-channel σ of 0.1 · 255 · std_c levels of 0-255."""
    g = torch.Generator().manual_seed(3)
    raw = 128 + (torch.rand(1, 3, 8, 8, generator=g) - 0.5) * 12  # neighbours a few levels apart
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    loss = GatedCRFLoss(radius=1, stride=1, sigma_xy=1e6, sigma_rgb=0.1, gate="src")
    kernel = loss.kernel((raw / 255 - mean) / std, torch.ones(1, 1, 8, 8))
    sigma = 0.1 * 255 * std.view(3)
    y, x, dy, dx = 3, 4, 1, -1
    d = ((raw[0, :, y, x] - raw[0, :, y + dy, x + dx]) / sigma).pow(2).sum()
    offset = (dy + 1) * 3 + (dx + 1)
    expected = torch.exp(-0.5 * d).item()
    assert expected > 0.05 and kernel[0, offset, y, x].item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("loss", ["ohem", "relax"])
def test_losses_that_discard_or_dilate_sparse_labels_are_refused(loss):
    config = apply_overrides(TrainConfig(), {"weak": "scribbles", "loss": loss})
    with pytest.raises(EdgesegError, match=f"loss={loss}.*use loss=ce"):
        config.validate()
    apply_overrides(TrainConfig(), {"weak": "none", "loss": loss}).validate()  # dense labels: allowed


def test_weak_labels_default_to_cross_entropy():
    assert TrainConfig(weak="points").resolved().loss == "ce"
    assert TrainConfig().resolved().loss == "ohem"


def test_refusal_from_the_cli_is_one_line(tmp_path, cli_here):
    r = cli_here("train", "--out", str(tmp_path / "run"), "--set", "weak=points", "loss=ohem")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "loss=ohem" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_cli_trains_from_scribbles_with_the_gated_crf(tmp_path, cli_here):
    out = tmp_path / "run"
    r = cli_here("train", "--model", "bisenetv2", "--data", "synthetic", "--out", str(out), "--iters", "2",
            "--batch-size", "2", "--crop", "32x64", "--set", "weak=scribbles", "gcrf_weight=0.1", "workers=0",
            "val_max_images=1", "log_every=1", "warmup=1")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [rec for rec in records if "lr" in rec]
    assert [rec["iter"] for rec in steps] == [1, 2]
    assert "loss_gcrf" not in steps[0] and steps[1]["loss_gcrf"] > 0  # warm-up: from ceil(0.005 × 2) = 1 on
    config = json.loads((out / "config.json").read_text())
    assert (config["loss"], config["weak"], config["gcrf_weight"]) == ("ce", "scribbles", 0.1)
