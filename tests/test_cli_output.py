"""What the commands tell while they work and when they finish: validation announced (images, resolution,
backend) with a progress bar, every printed mIoU saying what it was measured on, bench's bar in the user's
iterations, a warning for a warm-up longer than the timing, nested progress bars on a terminal."""

import io
import json
import logging

import numpy as np
import pytest
from bench_fixtures import H, W, make_threshold_bundle, make_threshold_data
from conftest import bundle_group
from PIL import Image

from edgeseg.progress import Progress


@pytest.fixture
def tiny(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b")
    spec, _ = make_threshold_data(tmp_path / "data")
    return tmp_path, bundle, spec


def test_eval_announces_what_it_scores_and_says_it_with_the_miou(tiny, cli_here):
    _, bundle, spec = tiny
    out = cli_here("eval", str(bundle), "--data", spec, "--backend", "onnxruntime")
    assert out.returncode == 0, out.stderr
    assert (f"scoring 4 images of folder/images ({H}x{W} the first) with onnxruntime: fitted to its {H}x{W} input"
            in out.stderr) and "validate onnxruntime [" in out.stderr
    head = out.stdout.splitlines()[0]
    assert "onnxruntime" in head and "4 images" in head and f"{H}x{W}" in head, head


def test_bench_says_what_its_miou_was_measured_on(tiny, cli_here):
    _, bundle, spec = tiny
    out = cli_here("bench", str(bundle), "--backend", "onnxruntime", "--iters", "1", "--warmup", "0", "--data", spec,
                   "--val-images", "3")
    assert out.returncode == 0, out.stderr
    note = next(line for line in out.stdout.splitlines() if line.startswith("mIoU:"))
    assert "3 images of" in note and f"{H}x{W} input" in note and "onnxruntime" in note, note


def test_bench_counts_the_iterations_asked_for_across_engines(tiny, caplog):
    from edgeseg.runtime.bench import BenchSettings, run_bench

    _, bundle, _ = tiny
    with caplog.at_level(logging.INFO, logger="edgeseg.progress"):
        result = run_bench([str(bundle)], BenchSettings(backend="onnxruntime", iters=3, warmup=2))
    assert len(result.rows) == 2
    bars = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bench (")]
    assert bars and bars[-1].startswith("bench (2 engines × 3 iterations)") and " 6/6 " in bars[-1], bars
    assert all(int(b.split("] ")[1].split("/")[0]) <= 6 for b in bars), bars


@pytest.mark.parametrize("warmup, warned", [(3, True), (1, False)])
def test_a_warmup_longer_than_the_timing_warns(tiny, cli_here, warmup, warned):
    _, bundle, _ = tiny
    out = cli_here("bench", str(bundle), "--backend", "onnxruntime", "--precision", "fp32", "--iters", "1",
                   "--warmup", str(warmup))
    assert out.returncode == 0, out.stderr
    assert ("--warmup 3 is longer than --iters 1" in out.stderr) is warned


def test_the_gate_says_what_it_scored_and_keeps_an_earlier_fp16_variant_gated(tmp_path):
    """calibrate without --fp16 scores the FP16 variant an earlier export made again, so the gate still covers it."""
    from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle
    from edgeseg.cli.variants import variants_table
    from edgeseg.runtime.bundle import open_bundle

    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0, "fp16": 100.0})
    spec, _ = make_threshold_data(tmp_path / "data")
    calibrate_bundle(bundle, CalibrationOptions(int8=False, fp16=False, eval_data=spec, max_miou_drop=1.0))
    manifest = open_bundle(bundle).manifest
    assert manifest.report("variants")["fp16"]["miou_drop"] > 1.0 and manifest.report("gate")["passed"] is False
    table, passed = variants_table(manifest)
    assert not passed
    assert f"ONNX Runtime on 4 images of folder/images, each fitted to the {H}x{W} input (stretch)" in table, table


def test_the_training_summary_says_what_its_miou_was_measured_on():
    from edgeseg.cli.train_cmd import format_summary

    text = format_summary({"best_miou": 0.5, "last_miou": 0.25, "iteration": 7, "best": "r/best.pt",
                           "last": "r/last.pt", "validation": {"data": "synthetic/val", "images": 12,
                                                               "resolution": "each image at its own size",
                                                               "backend": "torch", "device": "cpu"}})
    first = text.splitlines()[0]
    assert first.startswith("best mIoU 50.00, last 25.00 after 7 iterations") and "12 images of synthetic/val" in first
    assert "each image at its own size" in first and "torch on cpu" in first


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_started_inside_another_starts_on_its_own_line():
    stream = _Terminal()
    outer = Progress(4, "train", stream=stream)
    outer.update()
    inner = Progress(2, "validate", stream=stream)
    inner.update()
    inner.update()
    inner.close()
    outer.update()
    outer.close()
    lines = stream.getvalue().split("\n")
    assert [line.split("\r")[-1].split(" [")[0] for line in lines if line] == ["train", "validate", "train"], lines
    assert stream.getvalue().endswith("\n")


@bundle_group("lednet")
def test_device_auto_runs_the_torch_backend_where_torch_can(registry_bundle, tmp_path, cli_here):
    bundle = registry_bundle("lednet").bundle
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((*bundle.input_size, 3), np.uint8)).save(frames / "f.png")
    out = cli_here("run", str(bundle.root), "--source", str(frames), "--backend", "torch", "--json")
    assert out.returncode == 0, out.stderr


def test_demo_prints_what_its_mious_were_measured_on_and_json(tiny, cli_here, monkeypatch):
    """The demo's closing lines (its stages replaced by their results on the tiny bundle): the bench mIoU and the
    gate's with their images, resolution and backend; --json instead, as one document."""
    import edgeseg.demo
    from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle
    from edgeseg.runtime.bench import BenchSettings, run_bench
    from edgeseg.runtime.report import build_report

    root, bundle, spec = tiny
    calibrate_bundle(bundle, CalibrationOptions(int8=False, fp16=False, eval_data=spec))
    report = build_report(run_bench([str(bundle)], BenchSettings(backend="onnxruntime", precision="fp32", iters=1,
                                                                 warmup=0, data=spec, progress=False)), None)
    done = edgeseg.demo.DemoResult(root / "best.pt", bundle, root / "report", report, True,
                                   {"train": 1.0, "export": 2.0, "bench": 3.0, "total": 6.0})
    monkeypatch.setattr(edgeseg.demo, "run_demo", lambda options: done)
    text = cli_here("demo", "--out", str(root / "demo"))
    assert text.returncode == 0, text.stderr
    assert "mIoU: 4 images of" in text.stdout and f"{H}x{W} input" in text.stdout
    assert f"accuracy gate mIoU: ONNX Runtime on 4 images of folder/images, each fitted to the {H}x{W}" in text.stdout
    out = cli_here("demo", "--out", str(root / "demo"), "--json")
    result = json.loads(out.stdout)
    assert result["gate_passed"] is True and result["rows"][0]["accuracy"]["images"] == 4


def test_a_reader_that_goes_away_is_not_an_error():
    """``edgeseg models --json | head -c0``: the pipe closes before edgeseg writes; it ends quietly with a SIGPIPE
    status, with no traceback, no "internal error" and no "Exception ignored" from the last flush."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "models", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == 141, err
    assert "Error" not in err and "error" not in err and "Exception" not in err, err
