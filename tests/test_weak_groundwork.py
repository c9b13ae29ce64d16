"""The plumbing weak supervision stands on: side maps that follow the geometry, the validity map, the shared
window gather, the config keys, more training data and other validation data, and the trainer's hook for loss
terms that need the image."""

import json

import numpy as np
import pytest
import torch

from edgeseg.crf.window import shift_kernels, window
from edgeseg.data.concat import ConcatSource
from edgeseg.data.synthetic_source import SyntheticSource
from edgeseg.data.torch_dataset import TorchSegmentationDataset
from edgeseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    train_transforms,
)
from edgeseg.errors import EdgesegError
from edgeseg.models import load_checkpoint
from edgeseg.train.config import TrainConfig, apply_overrides, parse_set
from edgeseg.train.extras import open_sources
from edgeseg.train.trainer import Trainer


def _sample():
    image = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    label = np.zeros((6, 8), np.uint8)
    label[:, 4:] = 3
    coords = np.arange(1, 49, dtype=np.int32).reshape(6, 8)
    return image, label, coords


def test_side_maps_follow_scale_crop_and_flip_as_the_label_does():
    image, label, coords = _sample()
    rng = np.random.default_rng(0)
    _, out_label, side = RandomScale((2.0, 2.0))(image, label, rng, side={"c": coords})
    assert np.array_equal(side["c"], np.repeat(np.repeat(coords, 2, 0), 2, 1))
    _, flipped, side = RandomHorizontalFlip(1.0)(image, label, rng, side={"c": coords})
    assert np.array_equal(side["c"], coords[:, ::-1]) and np.array_equal(flipped, label[:, ::-1])
    _, jittered, side = ColorJitter()(image, label, rng, side={"c": coords})
    assert side["c"] is coords
    _, padded, depth, side = RandomCrop((9, 10))(image, label, rng, depth=coords.astype(np.float32),
                                                 side={"c": coords, "valid": np.ones((6, 8), np.uint8)})
    assert np.array_equal(side["valid"] == 0, padded == 255)  # padding: invalid, and nothing else
    assert np.array_equal(side["c"] == 0, padded == 255) and np.array_equal(depth, side["c"].astype(np.float32))


def test_validity_marks_exactly_the_padding_through_the_whole_recipe():
    image, label, coords = _sample()
    label[:] = 1
    transform = train_transforms((12, 20), scales=(0.5, 1.5))
    for seed in range(6):
        img, out, depth, side = transform(image, label, np.random.default_rng(seed), depth=coords.astype(np.float32),
                                          side={"valid": np.ones((6, 8), np.uint8)})
        assert np.array_equal(side["valid"] == 0, out == 255) and (out != 255).any()
        assert np.array_equal(depth == 0, out == 255)
        plain = transform(image, label, np.random.default_rng(seed))
        assert len(plain) == 2 and np.array_equal(plain[1], out)  # side maps change nothing else


def test_dataset_returns_validity_on_request():
    source = SyntheticSource("train", 2)
    transform = Compose([RandomScale((0.5, 0.5)), RandomCrop((160, 300))])
    x, label, valid = TorchSegmentationDataset(source, transform, valid=True)[0]
    assert valid.dtype == torch.float32 and valid.shape == (160, 300)
    assert torch.equal(valid == 0, label == 255)  # the scenes label every pixel: 255 is padding only
    assert valid[:128, :256].eq(1).all() and valid[128:].eq(0).all() and valid[:, 256:].eq(0).all()
    assert len(TorchSegmentationDataset(source, transform)[0]) == 2


def test_window_unfold_and_conv_forms_are_identical():
    x = torch.randn(2, 3, 7, 9)
    for k in (1, 3, 5):
        a, b = window(x, k), window(x, k, shift_kernels(3, k))
        assert a.shape == (2, 3, k * k, 7, 9) and torch.equal(a, b)
    w = window(x, 3)
    assert torch.equal(w[:, :, 4], x)  # the centre
    assert torch.equal(w[:, :, 5, :, :-1], x[:, :, :, 1:]) and w[:, :, 5, :, -1].eq(0).all()  # right neighbour


def test_config_keys_convert_validate_and_round_trip():
    values = parse_set(["weak=crop:32x64", "weak_seed=3", "extra_train_data=folder:a/img,a/lbl", "val_data=synthetic",
                        "gcrf_weight=0.1", "gcrf_gate=src"])
    config = apply_overrides(TrainConfig(), values).validate()
    assert config.extra_train_data == ["folder:a/img,a/lbl"] and config.val_data == "synthetic"
    stored = config.resolved().to_dict()
    again = apply_overrides(TrainConfig(), json.loads(json.dumps(stored))).validate()
    assert again.to_dict() == stored
    listed = apply_overrides(TrainConfig(), parse_set(["extra_train_data=['synthetic:4', 'synthetic:2']"]))
    assert listed.extra_train_data == ["synthetic:4", "synthetic:2"]
    assert apply_overrides(TrainConfig(), {"val_data": "none"}).val_data is None
    for bad in ({"weak": "strokes"}, {"val_data": "nope:x"}, {"extra_train_data": ["bogus"]}, {"gcrf_radius": 0},
                {"gcrf_gate": "dst"}, {"gcrf_weight": -1}, {"gcrf_start": 2},
                {"weak": "boxes", "class_weights": [1] * 8}):
        with pytest.raises(EdgesegError):
            apply_overrides(TrainConfig(), bad).validate()


def _folder(root, classes):
    from PIL import Image

    (root / "img").mkdir(parents=True)
    (root / "lbl").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "img" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "lbl" / "a.png")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return f"folder:{root / 'img'},{root / 'lbl'}"


def test_extra_training_data_and_validation_data(tmp_path):
    same = _folder(tmp_path / "same", SyntheticSource().classes)
    train, val = open_sources(TrainConfig(data="synthetic:3", extra_train_data=[same, "synthetic:2"]))
    assert isinstance(train, ConcatSource) and len(train) == 6 and len(val) == 100
    assert train.sample_id(3) == "a" and np.array_equal(train[4][1], SyntheticSource("train", 2)[0][1])
    train, val = open_sources(TrainConfig(data="synthetic:3", val_data=same))
    assert len(train) == 3 and len(val) == 1
    other = _folder(tmp_path / "other", ["a", "b"])
    for config in (TrainConfig(data="synthetic:3", extra_train_data=[other]),
                   TrainConfig(data="synthetic:3", val_data=other)):
        with pytest.raises(EdgesegError, match="class lists must be equal"):
            open_sources(config)


def _config(out, **kw):
    base = dict(model="lednet", data="synthetic:16", out=str(out), iters=3, batch_size=2, crop=(32, 64), workers=0,
                warmup=1, val_every=100, checkpoint_every=1, val_max_images=1, log_every=1, weak="points",
                gcrf_weight=0.5, gcrf_radius=2, gcrf_start=0.5)
    base.update(kw)
    return TrainConfig(**base)


def test_trainer_adds_the_gated_crf_after_its_warm_up_and_logs_it(tmp_path):
    Trainer(_config(tmp_path)).run()
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "lr" in r]
    assert ["loss_gcrf" in r for r in steps] == [False, False, True]  # from ceil(0.5 × 3) = iteration 2
    for r in steps:
        parts = r["loss_main"] + sum(v for k, v in r.items() if k.startswith("loss_aux"))
        assert r["loss"] == pytest.approx(parts + 0.5 * r.get("loss_gcrf", 0.0), abs=1e-3)


def test_resume_is_exact_with_weak_labels_and_the_gated_crf(tmp_path):
    settings = dict(weak="scribbles", iters=2, gcrf_start=0.0)
    Trainer(_config(tmp_path / "a", **settings)).run()
    Trainer(_config(tmp_path / "b", **settings)).run(stop_at=1)
    Trainer(_config(tmp_path / "b", **settings), resume=True).run()
    a, b = (load_checkpoint(tmp_path / x / "last.pt")["state_dict"] for x in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_model_that_learns_from_dense_labels_before_training_refuses_weak_labels(tmp_path):
    with pytest.raises(EdgesegError, match="cannot train from weak=points"):
        Trainer(_config(tmp_path, model="dunet", model_kwargs={"depth": 18}, gcrf_weight=0.0))
