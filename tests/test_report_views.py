"""What the bench report shows people: the class legend, where fp16/int8 labels differ from fp32, the confusion
matrices, honest plot axes, noise warnings, the quantization story, notes on merging unlike runs; and the
overlay video (browser codec, umask, legend strip). Built on constructed runs whose right answers are known."""

import io
import logging
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from bench_fixtures import (
    calibration_record,
    heavy_onnx,
    make_threshold_bundle,
    make_threshold_data,
    read_report,
    reference_labels,
    write_video,
)
from PIL import Image

from edgeseg.runtime import cpuload, sinks
from edgeseg.runtime.bench import BenchResult, BenchSettings, run_bench
from edgeseg.runtime.bundle import open_bundle, sha256_file
from edgeseg.runtime.bundle_facts import quantization_facts
from edgeseg.runtime.overlay import LEGEND_MAX_SHARE, LegendStrip, blend
from edgeseg.runtime.report import build_report, plots, write_bench_report
from edgeseg.runtime.report.document import gate_lines
from edgeseg.runtime.sources import Frame
from edgeseg.runtime.stats import latency_stats, noise_notes

CLASSES = ["road", "car", "person"]
PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60]]


def _row(rid, precision, backend, fps, miou, *, samples=None, timing="perf_counter", load=None, confusion=None,
         quantization=None, model="m", input_size=(8, 12), source=None):
    samples = [float(v) for v in (samples if samples is not None else np.linspace(0.98, 1.02, 20) * 1000 / fps)]
    stats = {**latency_stats(samples), "samples": samples}
    accuracy = None if miou is None else {"data": "synthetic", "split": "val", "images": 2, "miou": miou,
                                          "pixel_acc": 0.9, "mean_acc": 0.8, "per_class_iou": [miou, miou, None]}
    if accuracy is not None and confusion is not None:
        accuracy["confusion"] = confusion
    return {"id": rid, "model": model, "artifact": "out/b", "file": "model.onnx", "file_mib": 1.5, "backend": backend,
            "precision": precision, "providers": [], "batch": 1, "input_size": list(input_size), "frames": "data",
            "load_s": 0.1, "timing": timing, "latency_ms": stats, "end_to_end_ms": stats,
            "stages_ms": {"preprocess": 0.1, "transfer": None, "inference": 1000 / fps, "postprocess": 0.05},
            "throughput": {"streams": 1, "frames": 20, "seconds": 20 / fps, "fps": fps, "method": "host threads"},
            "end_to_end_fps": fps, "memory": {"host_peak_rss_mib": 100.0, "host_rss_increase_mib": 10.0,
                                              "host_peak_isolated": True, "device_peak_mib": None},
            "classes": CLASSES, "palette": PALETTE, "accuracy": accuracy, "load": load,
            "quantization": quantization, "source": source}


def _result(rows, predictions=None, count=2, seed=0):
    rng = np.random.default_rng(seed)
    samples = [(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), rng.integers(0, 3, (8, 12), dtype=np.uint8))
               for _ in range(count)]
    predictions = predictions or {r["id"]: [s[1] for s in samples] for r in rows}
    env = {"cpu": "Test CPU", "cpu_cores": 2, "gpus": [], "packages": {}, "date": "2026-11-24"}
    return BenchResult(env, {"warmup": 1, "iters": 20, "streams": 1, "data": "synthetic", "split": "val"}, rows,
                       samples, predictions)


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).reshape(-1, 3)


# --- the class legend ---------------------------------------------------------------------------------------

def test_the_report_has_a_legend_naming_every_class_in_its_colour(tmp_path):
    rows = [_row("m-fp32-onnxruntime", "fp32", "onnxruntime", 20, 0.7)]
    write_bench_report(_result(rows), tmp_path / "r")
    html, md = (tmp_path / "r" / "report.html").read_text(), (tmp_path / "r" / "report.md").read_text()
    legend = html.split('<table class="legend">')[1].split("</table>")[0]
    for k, (name, (r, g, b)) in enumerate(zip(CLASSES, PALETTE)):
        assert f'background:#{r:02x}{g:02x}{b:02x}"></span> {k} {name}</td>' in legend
        assert f"| {k} | {name} | #{r:02x}{g:02x}{b:02x} |" in md
    assert "![Class colours (3 classes)](figures/legend-1.png)" in md
    pixels = _pixels((tmp_path / "r" / "figures" / "legend-1.png").read_bytes())
    for colour in PALETTE:  # each class's swatch is drawn in its colour
        assert (pixels == colour).all(axis=1).sum() >= 20, colour


# --- where fp16/int8 labels differ from fp32 ----------------------------------------------------------------

def test_disagreement_maps_mark_exactly_the_pixels_whose_labels_differ(tmp_path):
    rows = [_row("m-fp32-onnxruntime", "fp32", "onnxruntime", 20, 0.7),
            _row("m-int8-onnxruntime", "int8", "onnxruntime", 35, 0.68)]
    result = _result(rows, count=3)
    rng = np.random.default_rng(1)
    masks = [rng.random((8, 12)) < share for share in (0.0, 0.25, 0.6)]
    result.predictions["m-int8-onnxruntime"] = [np.where(m, (label + 1) % 3, label).astype(np.uint8)
                                                for m, (_, label) in zip(masks, result.samples)]
    report = write_bench_report(result, tmp_path / "r")
    int8 = next(r for r in report["rows"] if r["precision"] == "int8")
    assert int8["disagreement"]["reference"] == "m-fp32-onnxruntime"
    assert int8["disagreement"]["fractions"] == [round(float(m.mean()), 6) for m in masks]
    assert report["rows"][0]["disagreement"] is None  # the reference is not compared with itself
    for m, (image, label), pred in zip(masks, result.samples, result.predictions["m-int8-onnxruntime"]):
        picture = plots.disagreement_picture(image, pred, label)
        marked = (picture == plots.MISMATCH).all(axis=2)
        np.testing.assert_array_equal(marked, m)
        assert (picture[~m][:, 0] == picture[~m][:, 1]).all()  # the rest is the frame in grey
    md = (tmp_path / "r" / "report.md").read_text()
    shares = " | ".join(f"{100 * m.mean():.2f}%" for m in masks)
    assert f"| m int8 onnxruntime | m fp32 onnxruntime | {shares} |" in md
    assert "(figures/disagreement-1.png)" in md and (tmp_path / "r" / "figures" / "disagreement-1.png").is_file()
    assert "<h2>Where the labels differ from fp32</h2>\n<figure>" in (tmp_path / "r" / "report.html").read_text()


# --- the confusion matrix -----------------------------------------------------------------------------------

def test_confusion_matrices_are_drawn_row_normalised_with_class_names(tmp_path):
    fp32 = [[8, 2, 0], [1, 9, 0], [0, 0, 0]]
    int8 = [[6, 3, 1], [0, 10, 0], [0, 0, 0]]
    rows = [_row("m-fp32-onnxruntime", "fp32", "onnxruntime", 20, 0.7, confusion=fp32),
            _row("m-int8-onnxruntime", "int8", "onnxruntime", 35, 0.68, confusion=int8)]
    report = write_bench_report(_result(rows), tmp_path / "r")
    fig = plots.confusion_figure(report["rows"], CLASSES, report)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 2
    for ax, counts in zip(axes, (fp32, int8)):
        assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
        assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
        shown = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
        expected = np.array(counts, float)
        expected[:2] /= expected[:2].sum(axis=1, keepdims=True)  # each true class over its own pixels
        expected[2] = np.nan  # a class with no pixels has no row to share out
        np.testing.assert_allclose(shown, expected, equal_nan=True)
    md, html = (tmp_path / "r" / "report.md").read_text(), (tmp_path / "r" / "report.html").read_text()
    assert "## Confusion matrices on Test CPU ×2 (3 classes)" in md and "(figures/confusion-1.png)" in md
    assert "<h2>Confusion matrices on Test CPU ×2 (3 classes)</h2>\n<figure>" in html


# --- honest axes --------------------------------------------------------------------------------------------

def _gated_report(budget=1.0):
    quant = {"budget_points": budget} if budget is not None else None
    rows = [_row("m-fp32-torch", "fp32", "torch", 19.7, 0.5612, quantization=quant),
            _row("m-fp32-onnxruntime", "fp32", "onnxruntime", 30.4, 0.555803, quantization=quant),
            _row("m-fp16-onnxruntime", "fp16", "onnxruntime", 26.8, 0.555822, quantization=quant),
            _row("m-int8-onnxruntime", "int8", "onnxruntime", 34.7, 0.555109, quantization=quant)]
    return build_report(_result(rows), None)


def test_accuracy_axis_spans_two_points_and_draws_the_gate_at_reference_minus_budget():
    report = _gated_report(budget=1.0)
    (gate,) = gate_lines(report)
    assert gate["reference"] == "m-fp32-onnxruntime"  # the gate scored with ONNX Runtime, not torch
    assert gate["miou"] == pytest.approx(55.5803 - 1.0)
    ax = plots.accuracy_figure(report).axes[0]
    low, high = ax.get_ylim()
    assert high - low >= 2.0 and low <= 55.5109 - 1.0 and high >= 56.12 + 1.0
    (line,) = [line for line in ax.lines if line.get_label().startswith("gate")]
    assert np.allclose(line.get_ydata(), 55.5803 - 1.0)
    ungated = plots.accuracy_figure(_gated_report(budget=None)).axes[0]
    assert not [line for line in ungated.lines if line.get_label().startswith("gate")]
    assert np.diff(ungated.get_ylim())[0] >= 2.0


def test_one_slow_noisy_row_does_not_squash_the_latency_plot():
    rng = np.random.default_rng(0)
    quiet = [_row("a", "fp32", "onnxruntime", 1000 / 29, 0.7), _row("b", "int8", "onnxruntime", 1000 / 37, 0.7)]
    noisy = list(rng.uniform(45, 55, 45)) + [2000, 4000, 7500, 7400, 6000]  # torch under load
    report = build_report(_result([*quiet, _row("c", "fp32", "torch", 20, 0.7, samples=noisy)]), None)
    fig = plots.latency_figure(report)
    fig.draw_without_rendering()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    (x29, _), (x37, _) = ax.transData.transform([(29, 0), (37, 0)])
    assert abs(x37 - x29) >= 20  # the two quiet engines' medians stay pixels apart, not one line
    calm = plots.latency_figure(build_report(_result(quiet), None))
    assert calm.axes[0].get_xscale() == "linear"


# --- noise warnings -----------------------------------------------------------------------------------------

LOADED = {"cpus": 2, "loadavg_before": 0.5, "loadavg_after": 1.5, "others_share": 0.4, "seconds": 5.0}


@pytest.mark.parametrize(("timing", "cv", "load", "expected"), [
    ("perf_counter", 0.05, None, []),
    ("perf_counter", 0.12, None, ["noisy"]),
    ("device events", 0.005, None, []),
    ("device events", 0.02, None, ["noisy"]),  # trtexec's 1% for device timing
    ("perf_counter", 0.02, LOADED, ["machine loaded"]),
    ("perf_counter", 0.02, {**LOADED, "seconds": 0.2}, []),  # too short a window to tell
    ("perf_counter", 0.02, {**LOADED, "others_share": 0.05}, []),
    ("perf_counter", 0.02, {**LOADED, "others_share": None, "loadavg_before": 3.0}, ["machine loaded"]),
    ("perf_counter", 0.2, LOADED, ["noisy", "machine loaded"]),
])
def test_noise_is_flagged_iff_the_cv_is_over_its_limit_or_the_machine_was_loaded(timing, cv, load, expected):
    row = {"timing": timing, "latency_ms": {"mean": 10.0, "std": 10.0 * cv}, "load": load}
    assert [n.split(":")[0] for n in noise_notes(row)] == expected


def test_the_report_marks_noisy_rows_beside_them(tmp_path):
    noisy = list(np.random.default_rng(0).uniform(40, 60, 45)) + [7500] * 5
    rows = [_row("quiet", "fp32", "onnxruntime", 30, 0.7),
            _row("noisy", "int8", "onnxruntime", 20, 0.7, samples=noisy),
            _row("loaded", "fp16", "onnxruntime", 25, 0.7, load=LOADED)]
    report = write_bench_report(_result(rows), tmp_path / "r")
    assert [bool(r["noise"]) for r in report["rows"]] == [False, True, True]
    speed = (tmp_path / "r" / "report.md").read_text().split("## Speed")[1].split("##")[0]
    lines = {line.split(" | ")[0]: line for line in speed.splitlines() if line.startswith("| m ")}
    assert lines["| m fp32 onnxruntime"].endswith("| perf_counter |  |")
    assert "⚠ noisy: latency CV" in lines["| m int8 onnxruntime"]
    assert "⚠ machine loaded: other processes used 40% of the 2 CPUs" in lines["| m fp16 onnxruntime"]
    assert (tmp_path / "r" / "report.html").read_text().count('<tr class="noisy">') == 2


def test_bench_logs_a_warning_for_a_loaded_machine(tmp_path, monkeypatch, caplog):
    class Loaded(cpuload.CpuLoad):
        def to_dict(self):
            return dict(LOADED)

    monkeypatch.setattr("edgeseg.runtime.bench.CpuLoad", Loaded)
    bundle = make_threshold_bundle(tmp_path / "b")
    with caplog.at_level(logging.WARNING, logger="edgeseg.runtime.bench"):
        result = run_bench([str(bundle / "model.onnx")], BenchSettings(backend="onnxruntime", iters=3, warmup=0,
                                                                        progress=False))
    assert result.rows[0]["load"] == LOADED
    assert "tiny fp32 onnxruntime: machine loaded: other processes used 40% of the 2 CPUs" in caplog.text


def test_cpu_load_counts_other_processes_and_not_this_one(monkeypatch):
    clock, machine, mine = iter([0.0, 2.0]), iter([100.0, 104.0]), iter([10.0, 11.0])
    monkeypatch.setattr(cpuload.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(cpuload, "_machine_busy_s", lambda: next(machine))
    monkeypatch.setattr(cpuload, "_self_busy_s", lambda: next(mine))
    monkeypatch.setattr(cpuload.os, "cpu_count", lambda: 2)
    with cpuload.CpuLoad() as load:
        pass
    assert load.others_share == pytest.approx((4.0 - 1.0) / (2 * 2.0))  # 4 busy CPU-s, 1 of them ours


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the share needs /proc/stat")
def test_cpu_load_sees_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with cpuload.CpuLoad() as load:
            time.sleep(1.5)
    finally:
        busy.kill()
        busy.wait()
    assert load.others_share >= 0.5 / load.cpus  # at least half a core of the machine's time


# --- the quantization story ---------------------------------------------------------------------------------

def _calibrated_bundle(root, passed: bool):
    bundle_dir = make_threshold_bundle(root)
    bundle = open_bundle(bundle_dir)
    bundle.manifest.reports.update(
        variants={"fp32": {"file": "model.onnx", "miou": 1.0, "miou_drop": 0.0, "label_agreement": 1.0},
                  "int8": {"file": "model.int8.onnx", "miou": 0.6, "miou_drop": 40.0, "label_agreement": 0.78,
                           "excluded": ["head_conv", "Resize_0", "conv_7", "conv_3"]}},
        gate={"max_miou_drop": 1.0, "eval_data": "folder:eval", "eval_images": 4, "passed": passed,
              "over_budget": {} if passed else {"int8": 40.0}})
    bundle.manifest.calibration = calibration_record(sha256_file(bundle_dir / "model.onnx"), (8, 12), images=16)
    (bundle_dir / "sensitivity.json").write_text(
        '{"ranking": [], "steps": [{"step": 0, "excluded": []}, {"step": 1, "excluded": ["conv_7"]}, '
        '{"step": 2, "excluded": ["conv_7", "conv_3"]}]}')
    bundle.add_file("sensitivity.json", "report")
    bundle.save()
    return bundle_dir


def test_the_quantization_section_tells_agreement_verdict_and_float_layers(tmp_path, cli):
    bundle = _calibrated_bundle(tmp_path / "bundle", passed=False)
    spec, images = make_threshold_data(tmp_path / "data")
    r = cli("bench", str(bundle), "--backend", "onnxruntime", "--data", spec, "--iters", "2", "--warmup", "0",
            "--report", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    int8 = next(row for row in read_report(tmp_path / "r")["rows"] if row["precision"] == "int8")
    same = sum(int((reference_labels(i, 100.0) == reference_labels(i, 127.0)).sum()) for i in images)
    agreement = same / sum(i.shape[0] * i.shape[1] for i in images)
    assert int8["agreement"] == {"reference": "tiny-fp32-onnxruntime", "label_agreement": pytest.approx(agreement),
                                 "images": len(images), "pixels": len(images) * 8 * 12}
    q = int8["quantization"]
    assert (q["verdict"], q["budget_points"], q["label_agreement"]) == ("fail", 1.0, 0.78)
    assert q["float_layers"] == ["head_conv", "Resize_0", "conv_7", "conv_3"]
    assert q["searched_float_layers"] == ["conv_7", "conv_3"] and q["calibration_images"] == 16
    md = (tmp_path / "r" / "report.md").read_text()
    section = md.split("## Quantization")[1].split("##")[0]
    assert (f"| tiny int8 onnxruntime | {100 * agreement:.2f}% (4 images) | 78.00% (4 images of folder:eval) | "
            in section)
    assert "| 1 point | FAIL (drop 40.00) | OVER (" in section
    assert "2 by the search (conv_7, conv_3); 2 at the head and after (head_conv, Resize_0)" in section
    assert "<h2>Quantization</h2>" in (tmp_path / "r" / "report.html").read_text()
    passing = quantization_facts(open_bundle(_calibrated_bundle(tmp_path / "b2", passed=True)),
                                 "model.int8.onnx", "int8")
    assert passing["verdict"] == "pass"


# --- merging unlike runs ------------------------------------------------------------------------------------

def test_merging_runs_of_other_input_sizes_or_checkpoints_warns(tmp_path, cli):
    for name, size, sha in (("a", (8, 12), "a" * 64), ("b", (16, 24), "b" * 64)):
        source = {"checkpoint": f"{name}.pt", "sha256": sha}
        write_bench_report(_result([_row("m-fp32-onnxruntime", "fp32", "onnxruntime", 20, 0.7, input_size=size,
                                         source=source)]), tmp_path / name)
    r = cli("report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    notes = read_report(tmp_path / "m")["notes"]
    assert [n.split(" (")[0] for n in notes] == ["these runs measured different input sizes",
                                                 "these runs measured different training checkpoints"]
    assert "run1: a.pt (sha256 aaaaaaaaaaaa); run2: b.pt (sha256 bbbbbbbbbbbb)" in notes[1]
    for note in notes:
        assert note in r.stderr
        assert f"> **⚠ {note}**" in (tmp_path / "m" / "report.md").read_text()
        assert f'<p class="warn">⚠ {note}</p>' in (tmp_path / "m" / "report.html").read_text()


# --- RSS increase -------------------------------------------------------------------------------------------

def test_rss_increase_does_not_depend_on_the_order_engines_ran(tmp_path, cli):
    big, small = heavy_onnx(tmp_path / "big.onnx", 24), heavy_onnx(tmp_path / "small.onnx", 4)
    figures = {}
    for order in ((big, small), (small, big)):
        out = tmp_path / f"r-{order[0].stem}"
        r = cli("bench", *map(str, order), "--backend", "onnxruntime", "--iters", "2", "--warmup", "0",
                "--report", str(out))
        assert r.returncode == 0, r.stderr
        for row in read_report(out)["rows"]:
            figures.setdefault(row["model"], []).append(row["memory"]["host_rss_increase_mib"])
    for model, (first, second) in figures.items():
        assert abs(first - second) <= 2.0, (model, first, second)
    assert min(figures["big"]) >= 20 > max(figures["small"])  # each engine's own weights, whatever ran before


# --- the overlay video --------------------------------------------------------------------------------------

BROWSER_FOURCCS = {"avc1", "h264", "H264", "VP90", "vp09", "VP80"}


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_the_overlay_video_plays_in_browsers_and_follows_the_umask(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    old = os.umask(0o027)
    try:
        with sinks.VideoSink(path, PALETTE, 10.0) as sink:
            for k in range(4):
                sink.write(Frame(k, np.full((48, 64, 3), 40 * k, np.uint8), str(k)), np.zeros((48, 64), np.uint8))
    finally:
        os.umask(old)
    assert sink.fourcc in sinks.BROWSER_CODECS
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
    capture.release()
    assert fourcc in BROWSER_FOURCCS
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_video_falls_back_to_mp4v_and_says_browsers_will_not_play_it(tmp_path, monkeypatch, caplog):
    real = cv2

    class NoBrowserCodecs:
        def __getattr__(self, name):
            return getattr(real, name)

        def VideoWriter(self, path, fourcc, fps, size):  # noqa: N802 - OpenCV's name
            if fourcc in (real.VideoWriter_fourcc(*"avc1"), real.VideoWriter_fourcc(*"vp09")):
                return real.VideoWriter()  # never opened: no such encoder in this build
            return real.VideoWriter(path, fourcc, fps, size)

    monkeypatch.setattr(sinks, "cv2_module", NoBrowserCodecs)
    with caplog.at_level(logging.INFO, logger="edgeseg.runtime.sinks"), \
            sinks.VideoSink(tmp_path / "o.mp4", PALETTE, 10.0) as sink:
        sink.write(Frame(0, np.zeros((16, 16, 3), np.uint8), "0"), np.zeros((16, 16), np.uint8))
    assert sink.fourcc == "mp4v" and (tmp_path / "o.mp4").is_file()
    assert "video codec mp4v: this OpenCV build encodes neither H.264 nor VP9, so browsers will not play" in caplog.text


def _stripped(picture, strip_rows):
    return picture[: picture.shape[0] - strip_rows], picture[picture.shape[0] - strip_rows:]


def test_the_legend_strip_sits_at_the_bottom_edge_and_names_the_classes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (240, 320), dtype=np.uint8)
    picture = blend(image, labels, PALETTE)
    strip = LegendStrip(CLASSES, PALETTE)
    drawn = strip.draw(picture, labels)
    rgb, _ = strip.render(strip.shown(labels), 320, 240)
    assert 0 < rgb.shape[0] <= LEGEND_MAX_SHARE * 240
    above, band = _stripped(drawn, rgb.shape[0])
    np.testing.assert_array_equal(above, picture[: 240 - rgb.shape[0]])  # the centre is untouched
    assert (band != picture[240 - rgb.shape[0]:]).any()
    for colour in PALETTE:  # few classes: every swatch, in its colour
        assert (band.reshape(-1, 3) == colour).all(axis=1).sum() >= 9, colour
    many = [f"a long class name {k}" for k in range(40)]
    crowded = LegendStrip(many, [[k, k, k] for k in range(40)])
    assert crowded.shown(np.array([[0, 5], [39, 5]], np.uint8)) == (0, 5, 39)  # many classes: those present
    everything = np.arange(40, dtype=np.uint8).reshape(5, 8).repeat(24, axis=0).repeat(20, axis=1)
    rgb, _ = crowded.render(crowded.shown(everything), 160, 120)
    assert rgb.shape[0] <= LEGEND_MAX_SHARE * 120  # forty names on a small frame: still only the bottom edge
    np.testing.assert_array_equal(strip.draw(picture[:8, :12], labels[:8, :12]), picture[:8, :12])  # too small


def test_video_sinks_draw_the_legend_unless_told_not_to(tmp_path):
    frame = Frame(0, np.full((120, 160, 3), 90, np.uint8), "0")
    labels = np.zeros((120, 160), np.uint8)
    plain = blend(frame.image, labels, PALETTE)
    with_legend = sinks.open_sink(str(tmp_path / "a.mp4"), PALETTE, classes=CLASSES)
    without = sinks.open_sink(str(tmp_path / "b.mp4"), PALETTE, classes=CLASSES, legend=False)
    np.testing.assert_array_equal(without.picture(frame, labels, None, bgr=False), plain)
    shown = with_legend.picture(frame, labels, None, bgr=False)
    assert (shown[-10:] != plain[-10:]).any() and (shown[:60] == plain[:60]).all()


def test_run_no_legend_leaves_the_strip_off_the_video(tmp_path, cli):
    bundle = make_threshold_bundle(tmp_path / "bundle")
    video = write_video(tmp_path / "in.mp4", [40, 200, 90], size=(120, 160))
    bands = {}
    for name, extra in (("with", []), ("without", ["--no-legend"])):
        r = cli("run", str(bundle), "--source", str(video), "--sink", str(tmp_path / f"{name}.mp4"), *extra)
        assert r.returncode == 0, r.stderr
        capture = cv2.VideoCapture(str(tmp_path / f"{name}.mp4"))
        ok, frame = capture.read()
        capture.release()
        assert ok
        bands[name] = frame.astype(np.int16)
    top = np.abs(bands["with"][:80] - bands["without"][:80]).mean()
    bottom = np.abs(bands["with"][-15:] - bands["without"][-15:]).mean()
    assert top < 3 < bottom  # the same picture but for the strip along the bottom
