import json

import pytest
import torch

from edgeseg.errors import CheckpointError
from edgeseg.models import load_checkpoint, load_model
from edgeseg.train.config import TrainConfig
from edgeseg.train.trainer import Trainer


def _config(out, **kw):
    base = dict(model="lednet", data="synthetic:16", out=str(out), iters=4, batch_size=2, crop=(32, 64),
                workers=0, warmup=1, val_every=100, checkpoint_every=2, val_max_images=2, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def test_resume_is_exact(tmp_path):
    straight = Trainer(_config(tmp_path / "a"))
    straight.run()
    first = Trainer(_config(tmp_path / "b"))
    first.run(stop_at=2)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["iteration"] == 2
    resumed = Trainer(_config(tmp_path / "b"), resume=True)
    assert resumed.iteration == 2
    resumed.run()
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_writes_checkpoints_log_and_config(tmp_path):
    trainer = Trainer(_config(tmp_path, loss="relax", accumulate=2, optimizer="adamw", lr=1e-3))
    result = trainer.run()
    assert 0 <= result["miou"] <= 1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if "lr" in r] == [1, 2, 3, 4]
    assert any(r.get("split") == "val" for r in records)
    assert json.loads((tmp_path / "config.json").read_text())["loss"] == "relax"
    model, meta, name = load_model(tmp_path / "best.pt")
    assert name == "lednet" and meta.num_classes == 8 and meta.input_size == (256, 512)


def test_training_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    """Training learns: steps on one fixed batch take its loss well below where it started (no dropout, so
    a run whose optimizer does nothing keeps exactly the first loss)."""
    trainer = Trainer(_config(tmp_path, iters=100, warmup=0, loss="ce",
                              model_kwargs={"dropout": 0.0, "deep_dropout": 0.0}))
    batch = next(iter(trainer._loader()))
    losses = [trainer._step([batch])["loss"] for _ in range(8)]
    assert losses[-1] < 0.7 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 5, losses  # mostly downhill, not one lucky step


def test_distillation_from_a_teacher(tmp_path):
    Trainer(_config(tmp_path / "teacher", iters=1)).run()
    cfg = _config(tmp_path / "student", iters=2, teacher=str(tmp_path / "teacher" / "best.pt"),
                  kd_pairwise_weight=0.5)
    Trainer(cfg).run()
    records = [json.loads(line) for line in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    assert "loss_kd" in records[0] and "loss_pair" in records[0]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(_config(tmp_path), resume=True)


def test_cli_train_then_eval(tmp_path, cli):
    out = tmp_path / "run"
    r = cli("train", "--model", "dfanet_b", "--data", "synthetic:8", "--iters", "2", "--batch-size", "2",
            "--crop", "32x64", "--out", str(out), "--set", "workers=0", "val_max_images=2", "warmup=1", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["iteration"] == 2 and (out / "best.pt").is_file()
    r = cli("eval", str(out / "best.pt"), "--data", "synthetic", "--max-images", "2", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) >= {"miou", "pixel_acc", "per_class_iou"} and len(result["per_class_iou"]) == 8
    table = cli("eval", str(out / "best.pt"), "--max-images", "1", "--boundary")
    assert "mIoU" in table.stdout and "boundary F" in table.stdout


def test_cli_bad_inputs(tmp_path, cli):
    cases = [("train", "--model", "nope", "--out", str(tmp_path)),
             ("train", "--out", str(tmp_path), "--set", "bogus=1"),
             ("train", "--out", str(tmp_path), "--data", "cityscapes:/does/not/exist"),
             ("eval", str(tmp_path / "missing.pt"))]
    for args in cases:
        r = cli(*args)
        assert r.returncode == 1, args
        assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("edgeseg: error")


def test_config_file_and_set_overrides(tmp_path):
    from edgeseg.cli.main import _build_parser
    from edgeseg.cli.train_cmd import build_config

    (tmp_path / "c.yaml").write_text("model: dfanet_b\nlr: 0.02\ncrop: [64, 128]\nmodel_kwargs: {mid_ratio: 0.5}\n")
    args = _build_parser("train").parse_args(["train", "--out", str(tmp_path), "--config", str(tmp_path / "c.yaml"),
                                              "--lr", "0.03", "--set", "crop=96x192", "loss=ce"])
    config = build_config(args)
    assert (config.model, config.lr, config.crop, config.loss) == ("dfanet_b", 0.03, (96, 192), "ce")
    assert config.model_kwargs == {"mid_ratio": 0.5}
