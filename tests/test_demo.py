"""``edgeseg demo`` on a trained checkpoint from an earlier run (training itself is tested in test_trainer)."""

import logging
import shutil
from pathlib import Path

from edgeseg.demo import DemoOptions, run_demo

TRAINED = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "lednet.pt"


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
    assert first.gate_passed in (True, False)
    html = (first.report_dir / "report.html").read_text()
    assert "lednet int8 onnxruntime" in html and html.count("data:image/png;base64,") >= 5
    manifest = (first.bundle / "manifest.json").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = run_demo(options)
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
