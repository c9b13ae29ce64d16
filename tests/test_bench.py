"""``edgeseg bench`` end to end on a tiny ONNX model whose right answers are known, and the target planning."""

import json

import numpy as np
import pytest
from bench_fixtures import (
    make_threshold_bundle,
    make_threshold_data,
    read_report,
    reference_labels,
    threshold_onnx,
)

from edgeseg.errors import EdgesegError
from edgeseg.metrics import ConfusionMatrix, scores_from_confusion
from edgeseg.runtime.bench import BenchSettings, measure_throughput, run_bench
from edgeseg.runtime.bench_plan import plan_targets
from edgeseg.runtime.onnxruntime_runner import OnnxRuntimeRunner


@pytest.fixture
def tiny(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "bundle")
    spec, images = make_threshold_data(tmp_path / "data")
    return bundle, spec, images


def _expected_miou(images, threshold):
    cm = ConfusionMatrix(2)
    for image in images:
        cm.update(reference_labels(image, threshold), reference_labels(image, 127.0))
    return scores_from_confusion(cm.matrix)["miou"]


def test_plan_takes_every_available_combination(tiny):
    bundle, _, _ = tiny
    targets = plan_targets([bundle], missing=lambda b: None if b == "onnxruntime" else "absent")
    assert [(t.backend, t.precision, t.file.name) for t in targets] == [
        ("onnxruntime", "fp32", "model.onnx"), ("onnxruntime", "int8", "model.int8.onnx")]
    only = plan_targets([bundle / "model.int8.onnx"], missing=lambda b: None)
    assert [(t.backend, t.precision, t.bundle) for t in only] == [("onnxruntime", "int8", bundle),
                                                                  ("openvino", "int8", bundle)]
    both = plan_targets([bundle], missing=lambda b: None if b in ("onnxruntime", "openvino") else "absent")
    assert [(t.backend, t.precision) for t in both] == [("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                        ("openvino", "fp32"), ("openvino", "int8")]


def test_plan_errors_name_what_is_missing(tiny, tmp_path):
    bundle, _, _ = tiny
    with pytest.raises(EdgesegError, match="tensorrt cannot run here: not here"):
        plan_targets([bundle], backend="tensorrt", missing=lambda b: "not here")
    with pytest.raises(EdgesegError, match="nothing to bench .* fp16.*it has fp32 onnx, int8 onnx"):
        plan_targets([bundle], precision="fp16", missing=lambda b: None)
    with pytest.raises(EdgesegError, match="not found"):
        plan_targets([tmp_path / "nope"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EdgesegError, match="expected a bundle folder"):
        plan_targets([tmp_path / "notes.txt"])


@pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_bench_measures_and_scores_every_variant(tiny, backend):
    bundle, spec, images = tiny
    settings = BenchSettings(backend=backend, data=spec, warmup=1, iters=5, overlays=2, progress=False)
    result = run_bench([str(bundle)], settings)
    by_precision = {r["precision"]: r for r in result.rows}
    assert set(by_precision) == {"fp32", "int8"} and {r["backend"] for r in result.rows} == {backend}
    assert by_precision["fp32"]["compute"] == {"onnxruntime": None, "openvino": "f32"}[backend]
    assert by_precision["fp32"]["accuracy"]["miou"] == 1.0  # labels follow the fp32 rule exactly
    assert by_precision["int8"]["accuracy"]["miou"] == pytest.approx(_expected_miou(images, 100.0))
    assert by_precision["int8"]["accuracy"]["miou"] < 1.0
    for row in result.rows:
        assert row["latency_ms"]["n"] == 5 and len(row["latency_ms"]["samples"]) == 5
        assert row["latency_ms"]["min"] <= row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert row["throughput"]["frames"] == 5 and row["throughput"]["fps"] > 0
        assert row["stages_ms"]["transfer"] is None  # a CPU runner cannot tell
        assert row["accuracy"]["images"] == len(images)
        assert row["memory"]["host_peak_rss_mib"] > 0
        assert len(result.predictions[row["id"]]) == 2
    np.testing.assert_array_equal(result.predictions[by_precision["int8"]["id"]][1],
                                  reference_labels(images[1], 100.0))
    assert [s[0].shape for s in result.samples] == [(8, 12, 3)] * 2


def test_throughput_with_several_in_flight_counts_every_frame(tmp_path):
    path = threshold_onnx(tmp_path / "m.onnx", 127.0, batch="N")
    feed = {"image": np.zeros((2, 8, 12, 3), np.uint8)}
    with OnnxRuntimeRunner(path, threads=1) as runner:
        result = measure_throughput(runner, feed, streams=3, iters=7)
    assert result["frames"] == 14 and result["streams"] == 3 and result["fps"] > 0


def test_bench_cli_writes_the_three_reports(tiny, tmp_path, cli):
    bundle, spec, images = tiny
    out = tmp_path / "report"
    r = cli("bench", str(bundle), "--backend", "onnxruntime", "--data", spec, "--iters", "4", "--warmup", "1",
            "--report", str(out))
    assert r.returncode == 0, r.stderr
    assert "tiny fp32 onnxruntime" in r.stdout and "report.html" in r.stdout
    report = read_report(out)
    rows = {row["precision"]: row for row in report["rows"]}
    drop = 100 * (1 - _expected_miou(images, 100.0))
    assert rows["int8"]["miou_drop"] == pytest.approx(drop, abs=1e-3) and rows["fp32"]["miou_drop"] == 0
    assert rows["fp32"]["pareto"] is True  # nothing is more accurate than a perfect score
    assert report["runs"][0]["environment"]["cpu_cores"] >= 1
    for row in report["rows"]:
        assert all((out / p).is_file() for p in row["overlays"])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # scatter, latency, stages, per-class, overlays
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    md = (out / "report.md").read_text()
    assert "| tiny int8 onnxruntime |" in md and "## Per-class IoU" in md


@pytest.mark.openvino
def test_bench_auto_adds_openvino_rows_for_every_onnx_file(tiny, tmp_path, cli_here):
    bundle, _, _ = tiny
    r = cli_here("bench", str(bundle), "--iters", "2", "--warmup", "0", "--report", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    rows = read_report(tmp_path / "r")["rows"]
    assert {(row["backend"], row["precision"]) for row in rows} == {
        ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")}
    assert {row["compute"] for row in rows if row["backend"] == "openvino"} == {"f32"}
    assert "| tiny fp32 openvino |" in (tmp_path / "r" / "report.md").read_text()


def test_an_fp16_row_computed_in_f32_says_so_in_its_label():
    from edgeseg.runtime.report.document import row_label

    row = {"model": "m", "precision": "fp16", "backend": "openvino", "compute": "f32", "run": "r1",
           "artifact": "b", "input_size": [8, 12]}
    ort = {**row, "backend": "onnxruntime", "compute": None}
    report = {"runs": [{"id": "r1"}], "rows": [row, ort]}
    assert row_label(row, report) == "m fp16 openvino (computes in f32)"
    assert row_label(ort, report) == "m fp16 onnxruntime"


def test_bench_cli_without_data_measures_speed_only(tiny, tmp_path, cli):
    bundle, _, _ = tiny
    r = cli("bench", str(bundle / "model.onnx"), "--backend", "onnxruntime", "--iters", "3", "--warmup", "0",
            "--report", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    report = read_report(tmp_path / "r")
    (row,) = report["rows"]
    assert row["accuracy"] is None and row["miou_drop"] is None and row["pareto"] is False
    assert row["frames"] == "noise"
    assert "No accuracy figures" in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.parametrize("case", ["missing", "corrupt", "batch", "classes", "not_a_report_dir"])
def test_bench_bad_input_is_one_line(tiny, tmp_path, cli, case):
    bundle, spec, _ = tiny
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    args = {"missing": ["bench", str(tmp_path / "nope")],
            "corrupt": ["bench", str(tmp_path / "junk.onnx"), "--iters", "1"],
            "batch": ["bench", str(bundle), "--batch", "2", "--iters", "1"],
            "classes": ["bench", str(bundle), "--data", "synthetic", "--iters", "1"],
            "not_a_report_dir": ["bench", str(bundle), "--iters", "1", "--report", str(tmp_path / "other")]}[case]
    r = cli(*args)
    assert r.returncode == 1
    message = r.stderr.strip().splitlines()[-1]
    assert message.startswith("edgeseg: error:") and "Traceback" not in r.stderr
    expected = {"missing": "not found", "corrupt": "cannot load ONNX model", "batch": "re-export with --batch 2",
                "classes": "predicts 2 classes", "not_a_report_dir": "refusing to replace"}[case]
    assert expected in message
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_bench_json_is_valid_for_tools(tiny, tmp_path, cli):
    bundle, spec, _ = tiny
    out = tmp_path / "r"
    assert cli("bench", str(bundle), "--data", spec, "--iters", "2", "--report", str(out)).returncode == 0
    json.loads((out / "report.json").read_text())  # plain JSON: no NaN / Infinity tokens
    assert "NaN" not in (out / "report.json").read_text()


def test_bench_on_onnxruntime_never_imports_torch(tiny):
    import subprocess
    import sys

    bundle, spec, _ = tiny
    code = ("import sys; from edgeseg.runtime.bench import BenchSettings, run_bench; "
            f"run_bench([{str(bundle)!r}], BenchSettings(data={spec!r}, iters=1, warmup=0, progress=False)); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_runner_timings_are_per_thread():
    """K pipeline threads share one runner: each must read the latency of its own last call."""
    import threading
    import time

    from edgeseg.runtime.runner import Runner, TensorSpec

    class Sleepy(Runner):
        def inputs(self):
            return [TensorSpec("x", "float32", (1,))]

        def _infer(self, feed):
            time.sleep(float(feed["x"][0]))
            self.last_stages_ms = {"compute": float(feed["x"][0]) * 1e3}
            return {}

    seen = {}
    with Sleepy("sleepy") as runner:
        def call(seconds, barrier):
            runner.infer({"x": np.array([seconds], np.float32)})
            barrier.wait()  # both calls finished before either reads
            seen[seconds] = (runner.last_latency_ms, runner.last_stages_ms["compute"])

        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=call, args=(s, barrier)) for s in (0.01, 0.2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen[0.01][0] < 100 < seen[0.2][0]
    assert seen[0.01][1] == pytest.approx(10, abs=0.01) and seen[0.2][1] == pytest.approx(200, abs=0.01)
