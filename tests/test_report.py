"""The report writers on constructed runs, and merging bench runs from two machines."""

import io

import numpy as np
import pytest
from bench_fixtures import make_threshold_bundle, make_threshold_data, read_report
from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.runtime.bench import BenchResult
from edgeseg.runtime.overlay import blend, load_label_png
from edgeseg.runtime.report import build_report, load_report, plots, write_bench_report
from edgeseg.runtime.report.document import annotate, merge_reports
from edgeseg.runtime.report.markdown import render_markdown

CLASSES = ["road", "car", "person"]
PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60]]


def _row(rid, precision, backend, fps, miou, artifact="out/b"):
    latencies = list(np.linspace(1000 / fps * 0.9, 1000 / fps * 1.2, 20))
    stats = {"p50": 1000 / fps, "p90": 1000 / fps, "p99": 1000 / fps, "mean": 1000 / fps, "min": 1000 / fps * 0.9,
             "max": 1000 / fps * 1.2, "std": 0.1, "n": 20, "samples": latencies}
    accuracy = None if miou is None else {"data": "synthetic", "split": "val", "images": 3, "miou": miou,
                                          "pixel_acc": 0.9, "mean_acc": 0.8, "per_class_iou": [miou, miou, None]}
    return {"id": rid, "model": "m", "artifact": artifact, "file": "model.onnx", "file_mib": 1.5, "backend": backend,
            "precision": precision, "providers": [], "batch": 1, "input_size": [8, 12], "frames": "data",
            "load_s": 0.1, "timing": "perf_counter", "latency_ms": stats, "end_to_end_ms": stats,
            "stages_ms": {"preprocess": 0.1, "transfer": None, "inference": 1000 / fps, "postprocess": 0.05},
            "throughput": {"streams": 1, "frames": 20, "seconds": 20 / fps, "fps": fps, "method": "host threads"},
            "end_to_end_fps": fps, "memory": {"host_peak_rss_mib": 100.0, "host_rss_increase_mib": 10.0,
                                              "host_peak_isolated": True, "device_peak_mib": None},
            "classes": CLASSES, "palette": PALETTE, "accuracy": accuracy}


def _result():
    rows = [_row("m-fp32-onnxruntime", "fp32", "onnxruntime", 20.0, 0.70),
            _row("m-fp16-onnxruntime", "fp16", "onnxruntime", 18.0, 0.70),  # slower, no better: off the front
            _row("m-int8-onnxruntime", "int8", "onnxruntime", 35.0, 0.68),
            _row("m-fp32-torch", "fp32", "torch", 12.0, 0.70)]
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), rng.integers(0, 3, (8, 12), dtype=np.uint8))
               for _ in range(2)]
    predictions = {r["id"]: [s[1] for s in samples] for r in rows}
    env = {"cpu": "Test CPU", "cpu_cores": 2, "gpus": [], "packages": {"onnxruntime": "1.0"}, "date": "2026-11-24"}
    return BenchResult(env, {"warmup": 1, "iters": 20, "streams": 1, "data": "synthetic", "split": "val"}, rows,
                       samples, predictions)


def test_drop_and_front_on_constructed_numbers():
    report = build_report(_result(), None)
    rows = {r["id"]: r for r in report["rows"]}
    assert rows["m-int8-onnxruntime"]["miou_drop"] == pytest.approx(2.0)
    assert rows["m-int8-onnxruntime"]["drop_reference"] == "m-fp32-onnxruntime"
    assert rows["m-fp32-torch"]["drop_reference"] == "m-fp32-torch"  # its own backend's fp32
    assert {k for k, r in rows.items() if r["pareto"]} == {"m-fp32-onnxruntime", "m-int8-onnxruntime"}


def test_drop_falls_back_to_another_backends_fp32():
    report = {"runs": [{"id": "run1"}], "rows": [_row("a", "fp32", "onnxruntime", 10, 0.6),
                                                   _row("b", "int8", "tensorrt", 50, 0.5)]}
    for row in report["rows"]:
        row["run"] = "run1"
    annotate(report)
    assert report["rows"][1]["miou_drop"] == pytest.approx(10.0) and report["rows"][1]["drop_reference"] == "a"


def test_writers_on_a_tiny_run(tmp_path):
    result = _result()
    for shift, row in enumerate(result.rows):  # each engine's predictions differ: (labels + shift) mod 3
        result.predictions[row["id"]] = [(label + shift) % 3 for _, label in result.samples]
    report = write_bench_report(result, tmp_path / "r")
    out = tmp_path / "r"
    back = load_report(out)
    assert back == report
    # what was written, against what this test computes from the constructed run itself
    assert {r["id"]: (r["miou_drop"], r["drop_reference"], r["pareto"]) for r in back["rows"]} == {
        "m-fp32-onnxruntime": (0.0, "m-fp32-onnxruntime", True),
        "m-fp16-onnxruntime": (0.0, "m-fp32-onnxruntime", False),
        "m-int8-onnxruntime": (2.0, "m-fp32-onnxruntime", True),
        "m-fp32-torch": (0.0, "m-fp32-torch", False)}
    palette = np.array(PALETTE, np.uint8)
    for k, (image, label) in enumerate(result.samples):
        sample = back["runs"][0]["samples"][k]
        np.testing.assert_array_equal(load_label_png(out / sample["label"]), label)
        with Image.open(out / sample["label"]) as png:  # the class colours, not just the indices
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), palette[label])
        with Image.open(out / sample["image"]) as jpeg:  # JPEG of noise: the mean colour survives, not pixels
            assert jpeg.size == (12, 8)
            assert np.abs(np.asarray(jpeg, np.float64).mean(axis=(0, 1)) - image.mean(axis=(0, 1))).max() < 3
        for shift, row in enumerate(back["rows"]):
            assert row["overlays"][k] == f"predictions/{row['id']}/{k}.png"
            np.testing.assert_array_equal(load_label_png(out / row["overlays"][k]), (label + shift) % 3)
    md = (out / "report.md").read_text()
    speed = md.split("## Speed")[1].split("##")[0]
    assert sum(line.startswith("| m ") for line in speed.splitlines()) == 4
    assert "| m int8 onnxruntime | 68.00 | 2.00 |" in md
    html = (out / "report.html").read_text()
    # scatter, latency, stages, per-class IoU, predictions, disagreement maps (rows without a confusion matrix)
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") == 6
    assert html.count('<tr class="front">') == 4  # two front rows, in the speed and the accuracy tables
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["0.jpg", "0.png", "1.jpg", "1.png"]


def _pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).reshape(-1, 3)


def _count(pixels: np.ndarray, colour, tolerance: int = 0) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) if isinstance(colour, str) else np.array(colour)
    return int((np.abs(pixels.astype(np.int16) - rgb).max(axis=1) <= tolerance).sum())


def test_plots_draw_what_the_report_holds():
    from matplotlib import colormaps

    report = build_report(_result(), None)
    for png in (plots.accuracy_vs_fps(report), plots.latency_distribution(report)):
        assert len(np.unique(_pixels(png), axis=0)) > 20  # a drawing, not a blank canvas
    # stage split: a bar per stage that has a time, in its colour; inference (50-83 ms) dwarfs postprocess (0.05)
    stages = {stage: _count(_pixels(plots.stage_split(report)), colour) for stage, colour in plots.STAGES}
    assert stages["transfer"] == 0  # None for every row: not drawn, not in the legend
    assert stages["inference"] > 20 * max(stages["preprocess"], stages["postprocess"]) > 0
    # per-class IoU heatmap: cells at 70% and 68% in viridis, none at 0% (the class without an IoU is blank)
    (title, png), = plots.per_class_iou(report)
    heatmap = _pixels(png)
    assert title == "Per-class IoU (3 classes)"
    for value, present in ((0.70, True), (0.68, True), (0.0, False)):
        colour = np.round(np.array(colormaps["viridis"](value)[:3]) * 255)
        assert (_count(heatmap, colour, tolerance=2) > 500) is present, value


def test_blend_keeps_ignored_pixels():
    image = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 255], [1, 0]], np.uint8)
    mixed = blend(image, labels, [[0, 0, 0], [200, 200, 200]], alpha=0.5)
    assert mixed[0, 1].tolist() == [100, 100, 100] and mixed[0, 0].tolist() == [50, 50, 50]
    assert mixed[1, 0].tolist() == [150, 150, 150]


def test_html_without_matplotlib_has_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    write_bench_report(_result(), tmp_path / "r")
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png" not in html and "Plots need matplotlib" in html and "<table>" in html


def test_markdown_escapes_pipes():
    result = _result()
    result.rows[0]["model"] = "a|b"
    assert "a\\|b fp32 onnxruntime" in render_markdown(build_report(result, None))


def test_merge_two_runs(tmp_path, cli):
    bundle = make_threshold_bundle(tmp_path / "bundle")
    spec, _ = make_threshold_data(tmp_path / "data")
    for name in ("jetson", "desktop"):
        r = cli("bench", str(bundle), "--backend", "onnxruntime", "--data", spec, "--iters", "2", "--warmup", "0",
                "--report", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    r = cli("report", str(tmp_path / "jetson"), str(tmp_path / "desktop"), "--out", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    merged = read_report(tmp_path / "merged")
    assert [run["id"] for run in merged["runs"]] == ["run1", "run2"]
    assert merged["runs"][1]["label"].endswith("#2")  # same machine twice: labels stay distinct
    assert [r["run"] for r in merged["rows"]] == ["run1", "run1", "run2", "run2"]
    assert len({r["id"] for r in merged["rows"]}) == 4
    for run in merged["runs"]:
        members = [r for r in merged["rows"] if r["run"] == run["id"]]
        assert any(r["pareto"] for r in members)  # each machine has its own front
        assert all(r["drop_reference"].startswith(run["id"]) for r in members)
    for row in merged["rows"]:
        assert all((tmp_path / "merged" / p).is_file() for p in row["overlays"])
    html = (tmp_path / "merged" / "report.html").read_text()
    assert html.count("<h2>Predictions on") == 2 and "@ " in html
    assert merged["notes"] == [] and "⚠ these runs" not in html  # like runs: nothing to warn about
    assert "measured different" not in r.stderr


def test_merge_errors(tmp_path, cli):
    with pytest.raises(EdgesegError, match="no report.json"):
        merge_reports([tmp_path], tmp_path / "out")
    (tmp_path / "report.json").write_text('{"format": "something-else"}')
    with pytest.raises(EdgesegError, match="not an edgeseg bench report"):
        load_report(tmp_path)
    r = cli("report", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "no report.json" in r.stderr and not (tmp_path / "o").exists()
