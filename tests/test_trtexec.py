"""trtexec interop: ``edgeseg build --print-trtexec`` (no TensorRT needed) and ``edgeseg bench --trtexec-times``
(a ``trtexec --exportTimes`` file as one more report row)."""

import json

import pytest
from bench_fixtures import H, W, calibration_record, file_entries, make_threshold_bundle

from edgeseg.errors import EdgesegError
from edgeseg.runtime.engine_plan import BuildOptions, plan_build
from edgeseg.runtime.manifest import TensorSpec
from edgeseg.runtime.trtexec import trtexec_command, trtexec_row

FILES = {"model.onnx": {"kind": "onnx", "precision": "fp32", "sha256": "a" * 64},
         "model.fp16.onnx": {"kind": "onnx", "precision": "fp16", "sha256": "b" * 64}}
INPUTS = [{"name": "image", "dtype": "uint8", "shape": ["batch", 8, 12, 3]}]


def command(options, inputs=(), trt="10.13.0"):
    plan = plan_build(file_entries(FILES), options, trt_version=trt, num_dla_cores=None, gpu_compute_capability=None,
                      inputs=[TensorSpec.from_dict(spec) for spec in inputs])
    return trtexec_command("/b", plan, options)


def test_print_trtexec_spells_every_build_option_as_trtexec_does():
    args = command(BuildOptions(precision="fp16", workspace_mb=512, opt_level=4, timing_cache="t.cache",
                                dla_core=1, version_compatible=True, max_batch=4, opt_batch=2), INPUTS)
    assert args == ["trtexec", "--onnx=/b/model.fp16.onnx", "--saveEngine=/b/model.fp16.dla1.engine",
                    "--stronglyTyped", "--memPoolSize=workspace:512M", "--builderOptimizationLevel=4",
                    "--profilingVerbosity=detailed", "--timingCacheFile=t.cache", "--useDLACore=1",
                    "--allowGPUFallback", "--versionCompatible", "--minShapes=image:1x8x12x3",
                    "--optShapes=image:2x8x12x3", "--maxShapes=image:4x8x12x3"]
    assert "--hardwareCompatibilityLevel=ampere+" in command(BuildOptions(hardware_compatibility="ampere+"))
    assert "--hardwareCompatibilityLevel=sameComputeCapability" in command(
        BuildOptions(hardware_compatibility="same-cc"))
    plain = command(BuildOptions(precision="fp32"))
    assert not any(a.startswith(("--useDLACore", "--minShapes", "--memPoolSize", "--allowGPU")) for a in plain)


def test_print_trtexec_for_the_legacy_calibrator_reads_the_cache():
    files = {**FILES, "calib.cache": {"kind": "calibration-cache", "precision": "int8"}}
    calibration = calibration_record("a" * 64, (H, W))
    options = BuildOptions(precision="int8", legacy_calibrator=True)
    plan = plan_build(file_entries(files), options, trt_version=None, num_dla_cores=None, gpu_compute_capability=None,
                      calibration=calibration, input_size=(H, W))
    args = trtexec_command("/b", plan, options)
    assert "--stronglyTyped" not in args and args[3:6] == ["--int8", "--fp16", "--calib=/b/calib.cache"]


def test_build_print_trtexec_needs_no_tensorrt(tmp_path, cli_here):
    bundle = make_threshold_bundle(tmp_path / "b")
    r = cli_here("build", str(bundle), "--precision", "fp32", "--workspace", "64", "--print-trtexec")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"trtexec --onnx={bundle}/model.onnx --saveEngine={bundle}/model.fp32.engine "
                                "--stronglyTyped --memPoolSize=workspace:64M --builderOptimizationLevel=3 "
                                "--profilingVerbosity=detailed")
    r = cli_here("build", str(bundle), "--precision", "fp16", "--print-trtexec")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "no fp16 ONNX" in r.stderr


def _times(path, n=5):
    records = [{"startEnqMs": 10.0 * i, "endEnqMs": 10.0 * i + 0.1, "startH2dMs": 10.0 * i, "endH2dMs": 10.0 * i + 1,
                "startComputeMs": 10.0 * i + 1, "endComputeMs": 10.0 * i + 4, "startD2hMs": 10.0 * i + 4,
                "endD2hMs": 10.0 * i + 5, "h2dMs": 1.0, "computeMs": 3.0, "d2hMs": 1.0, "latencyMs": 5.0}
               for i in range(n)]
    path.write_text(json.dumps(records))
    return path


def test_trtexec_times_become_a_row(tmp_path):
    row = trtexec_row(_times(tmp_path / "fp16.times.json"))
    assert row["backend"] == "trtexec" and row["latency_ms"]["p50"] == 5.0 and row["latency_ms"]["n"] == 5
    assert row["stages_ms"]["inference"] == 3.0 and row["stages_ms"]["transfer"] == 2.0
    assert row["throughput"]["fps"] == round(1e3 * 5 / 45, 2)  # 5 inferences from 0 ms to 45 ms
    (tmp_path / "bad.json").write_text(json.dumps([{"latencyMs": 1.0}]))
    with pytest.raises(EdgesegError, match="lacks startEnqMs"):
        trtexec_row(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(EdgesegError, match="non-empty JSON list"):
        trtexec_row(tmp_path / "empty.json")


def test_bench_adds_the_trtexec_row_to_its_report(tmp_path, cli_here):
    bundle = make_threshold_bundle(tmp_path / "b")
    times = _times(tmp_path / "trt.json")
    r = cli_here("bench", str(bundle), "--iters", "3", "--warmup", "0", "--trtexec-times", str(times), "--report",
                 str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [row["backend"] for row in report["rows"]][-1] == "trtexec" and "trtexec" in r.stdout
    r = cli_here("bench", str(bundle), "--trtexec-times", str(tmp_path / "missing.json"))
    assert r.returncode == 1 and "missing.json not found" in r.stderr
