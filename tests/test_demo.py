"""``edgeseg demo`` on a trained checkpoint from an earlier run (training itself is tested in test_trainer)."""

import dataclasses
import logging
import shutil
from pathlib import Path

import pytest

from edgeseg.calibration.gate import gate_verdict
from edgeseg.demo import DemoOptions, run_demo
from edgeseg.metrics import miou_drop_points
from edgeseg.runtime.bundle import open_bundle

TRAINED = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "lednet.pt"


@pytest.mark.heavy  # about 50 s: CI runs it in its heavy step
def test_demo_reuses_checkpoint_and_bundle(tmp_path, caplog):
    out = tmp_path / "demo"
    (out / "train-lednet").mkdir(parents=True)
    shutil.copyfile(TRAINED, out / "train-lednet" / "best.pt")
    options = DemoOptions(out=out, model="lednet", calib_images=4, gate_images=4, bench_iters=2, bench_warmup=0,
                          bench_images=3)
    with caplog.at_level(logging.INFO):
        first = run_demo(options)
    assert "reusing the checkpoint" in caplog.text
    rows = {(r["backend"], r["precision"]) for r in first.report["rows"]}
    assert {("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"), ("torch", "fp32")} <= rows
    assert all(r["accuracy"]["images"] == 3 for r in first.report["rows"])
    manifest = open_bundle(first.bundle).manifest
    variants, gate = manifest.report("variants"), manifest.report("gate")
    assert set(variants) == {"fp32", "fp16", "int8"} and gate["max_miou_drop"] == 1.0  # every variant, the default
    for v in variants.values():
        assert v["miou_drop"] == miou_drop_points(variants["fp32"]["miou"], v["miou"])
    passed = all(v["miou_drop"] <= gate["max_miou_drop"] for v in variants.values())
    assert first.gate_passed is passed is gate["passed"]
    assert {k: gate[k] for k in ("passed", "over_budget")} == gate_verdict(variants, gate["max_miou_drop"])
    html = (first.report_dir / "report.html").read_text()
    assert "lednet int8 onnxruntime" in html and html.count("data:image/png;base64,") >= 5
    manifest = (first.bundle / "manifest.json").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = run_demo(dataclasses.replace(options, bench_images=1, bench_iters=1))  # only the reuse is checked
    assert "reusing the bundle" in caplog.text
    assert (second.bundle / "manifest.json").stat().st_mtime_ns == manifest


def test_demo_bad_arguments(cli, tmp_path):
    r = cli("demo", "--model", "nonet", "--out", str(tmp_path / "d"))
    assert r.returncode == 1 and "nonet" in r.stderr and "Traceback" not in r.stderr
    r = cli("demo", "--minutes", "0", "--out", str(tmp_path / "d"))
    assert r.returncode == 1 and "--minutes" in r.stderr
    assert not (tmp_path / "d").exists()


def test_only_a_checkpoint_of_the_same_model_is_reused(tmp_path):
    from edgeseg.demo import _reusable_checkpoint

    assert _reusable_checkpoint(TRAINED, "lednet")
    assert not _reusable_checkpoint(TRAINED, "bisenetv2")
    assert not _reusable_checkpoint(tmp_path / "missing.pt", "lednet")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert not _reusable_checkpoint(tmp_path / "bad.pt", "lednet")


def _demo_options(*argv):
    from edgeseg.cli.demo_cmd import demo_options
    from edgeseg.cli.main import _build_parser

    return demo_options(_build_parser("demo").parse_args(["demo", *argv]))


def test_quick_is_shorter_everywhere_in_its_own_folder_and_explicit_flags_win():
    full, quick = _demo_options(), _demo_options("--quick")
    assert (full.out, full.minutes, full.bench_iters, full.bench_images) == (Path("demo"), 5.0, 50, 50)
    assert quick.out == Path("demo-quick")  # a later full demo never reuses the quick run's short training
    assert quick.minutes < full.minutes and quick.bench_iters < full.bench_iters
    assert quick.bench_images < full.bench_images
    assert quick.calib_images < full.calib_images and quick.gate_images < full.gate_images
    given = _demo_options("--quick", "--minutes", "3", "--out", "x", "--iters", "7", "--retrain")
    assert (given.out, given.minutes, given.bench_iters, given.retrain) == (Path("x"), 3.0, 7, True)
    assert given.bench_images == quick.bench_images
