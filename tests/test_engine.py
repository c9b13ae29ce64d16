"""TensorRT engine decisions (pure), the CUDA layer's error handling, and — where TensorRT and a GPU exist —
a real build and run."""

import json

import numpy as np
import pytest
from bench_fixtures import file_entries, make_threshold_bundle

from edgeseg.errors import EdgesegError
from edgeseg.runtime import cuda as cuda_module
from edgeseg.runtime.bench_plan import plan_targets
from edgeseg.runtime.cuda import CudaError, CudaPython, DeviceBuffer, get_cuda
from edgeseg.runtime.engine_plan import (
    BuildOptions,
    EngineMismatchError,
    check_engine_identity,
    layer_report,
    plan_build,
)
from edgeseg.runtime.manifest import CalibrationRecord, EngineRecord, FileEntry, ManifestError

FILES = {"model.onnx": {"kind": "onnx", "precision": "fp32", "sha256": "a" * 64},
         "model.fp16.onnx": {"kind": "onnx", "precision": "fp16", "sha256": "b" * 64},
         "model.int8.onnx": {"kind": "onnx", "precision": "int8", "sha256": "c" * 64},
         "calib.cache": {"kind": "calibration-cache", "precision": "int8", "sha256": "d" * 64}}
SIZE = (64, 128)
CALIBRATION = {"method": "percentile", "images": 8,
               "identity": {"onnx_sha256": "a" * 64, "calibration_sha256": "e" * 64, "input_size": list(SIZE),
                            "trt_version": "100300"}}


def plan(options, files=FILES, trt="10.13.0", dla=0, cc="8.9", calibration=CALIBRATION, size=SIZE):
    return plan_build(file_entries(files), options, trt_version=trt, num_dla_cores=dla, gpu_compute_capability=cc,
                      calibration=None if calibration is None else CalibrationRecord.from_dict(calibration),
                      input_size=size)


@pytest.mark.parametrize("precision, onnx", [("fp32", "model.onnx"), ("fp16", "model.fp16.onnx"),
                                             ("int8", "model.int8.onnx")])
def test_strongly_typed_builds_take_the_typed_onnx(precision, onnx):
    for trt in ("10.3.0", "11.0.0"):
        p = plan(BuildOptions(precision=precision), trt=trt)
        assert (p.onnx_file, p.strongly_typed, p.builder_flags) == (onnx, True, [])
        assert p.engine_file == f"model.{precision}.engine" and p.hardware_level == "NONE"


def test_missing_variant_says_how_to_add_it():
    with pytest.raises(EdgesegError, match="edgeseg calibrate BUNDLE --fp16"):
        plan(BuildOptions(precision="fp16"), files={"model.onnx": FILES["model.onnx"]})


def test_legacy_calibrator_is_tensorrt_10_only():
    p = plan(BuildOptions(precision="int8", legacy_calibrator=True), trt="10.3.0")
    assert (p.onnx_file, p.strongly_typed, p.calibration_cache) == ("model.onnx", False, "calib.cache")
    assert p.builder_flags == ["INT8", "FP16"] and p.engine_file == "model.int8.legacy.engine"
    with pytest.raises(EdgesegError, match="TensorRT 11.0.0 removed the INT8 calibrators"):
        plan(BuildOptions(precision="int8", legacy_calibrator=True), trt="11.0.0")
    with pytest.raises(EdgesegError, match="--calib-data"):
        plan(BuildOptions(precision="int8", legacy_calibrator=True), files={"model.onnx": FILES["model.onnx"]})
    with pytest.raises(EdgesegError, match="is for --precision int8"):
        plan(BuildOptions(precision="fp16", legacy_calibrator=True))


def test_legacy_calibrator_refuses_a_stale_calibration_cache():
    legacy = BuildOptions(precision="int8", legacy_calibrator=True)
    assert plan(legacy, trt="10.3.0").calibration_cache == "calib.cache"
    swapped = {**FILES, "model.onnx": {**FILES["model.onnx"], "sha256": "f" * 64}}  # re-exported after calibrating
    resized = {**CALIBRATION, "identity": {**CALIBRATION["identity"], "input_size": [64, 64]}}
    stale = ((swapped, CALIBRATION, SIZE), (FILES, resized, SIZE), (FILES, CALIBRATION, (32, 128)),
             (FILES, CALIBRATION, None))
    for files, calibration, size in stale:
        with pytest.raises(EdgesegError, match="calib.cache was made for another model or input size"):
            plan(legacy, files=files, trt="10.3.0", calibration=calibration, size=size)
    with pytest.raises(EdgesegError, match="no calibration recorded for it"):
        plan(legacy, trt="10.3.0", calibration=None)
    for calibration in ({"method": "percentile", "images": 8}, {"method": "x", "images": 8, "identity": "x"}):
        with pytest.raises(ManifestError, match="calibration"):
            plan(legacy, trt="10.3.0", calibration=calibration)
    no_cache = {k: v for k, v in FILES.items() if k != "calib.cache"}
    assert plan(BuildOptions(precision="int8", legacy_calibrator=True, calib_data="synthetic"), files=no_cache,
                trt="10.3.0", calibration=None).calibration_cache is None  # nothing to vouch for: it calibrates
    assert plan(BuildOptions(precision="int8"), calibration=None).onnx_file == "model.int8.onnx"  # Q/DQ: no cache


def test_dla_rules():
    p = plan(BuildOptions(precision="fp16", dla_core=1, gpu_fallback=True), dla=2, cc="8.7")
    assert p.dla_core == 1 and "GPU_FALLBACK" in p.builder_flags and p.engine_file == "model.fp16.dla1.engine"
    cases = [(BuildOptions(precision="fp16", dla_core=0), 0, "no DLA cores"),
             (BuildOptions(precision="fp16", dla_core=2), 2, "DLA cores 0..1"),
             (BuildOptions(precision="fp32", dla_core=0), 2, "fp16 or int8 only"),
             (BuildOptions(precision="fp16", dla_core=0, hardware_compatibility="ampere+"), 2, "cannot be combined"),
             (BuildOptions(precision="fp16", gpu_fallback=True), 2, "only means something with --dla")]
    for options, cores, message in cases:
        with pytest.raises(EdgesegError, match=message):
            plan(options, dla=cores, cc="8.7")


def test_compatibility_and_limits():
    p = plan(BuildOptions(hardware_compatibility="ampere+", version_compatible=True, workspace_mb=512, opt_level=5))
    assert p.hardware_level == "AMPERE_PLUS" and p.builder_flags == ["VERSION_COMPATIBLE"]
    assert p.workspace_bytes == 512 * 2**20 and p.opt_level == 5
    assert plan(BuildOptions(hardware_compatibility="same-cc")).hardware_level == "SAME_COMPUTE_CAPABILITY"
    cases = [(BuildOptions(hardware_compatibility="ampere+"), "10.3", "7.2", "Ampere or newer"),
             (BuildOptions(opt_level=6), "10.3", "8.9", "0..5"),
             (BuildOptions(workspace_mb=0), "10.3", "8.9", "at least 1 MB"),
             (BuildOptions(), "8.6.1", "8.9", "too old")]
    for options, trt, cc, message in cases:
        with pytest.raises(EdgesegError, match=message):
            plan(options, trt=trt, cc=cc)


ENTRY = {"kind": "engine", "precision": "fp16", "tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7",
         "hardware_compatibility": "NONE", "version_compatible": False}


def identity(entry=ENTRY, trt="10.3.0", gpu="Orin", cc="8.7"):
    typed = FileEntry.from_dict({"bytes": 1, "sha256": "0" * 64, **entry})
    return check_engine_identity("model.fp16.engine", typed, trt_version=trt, gpu_name=gpu, gpu_cc=cc, bundle="out/b")


def test_engine_identity():
    assert identity() == []
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT 10\.3\.0, this is TensorRT 10\.7\.0.*"
                                                  r"edgeseg build out/b --precision fp16"):
        identity(trt="10.7.0")
    with pytest.raises(EngineMismatchError, match=r"built for Orin \(compute 8\.7\), this is NVIDIA H100"):
        identity(gpu="NVIDIA H100", cc="9.0")
    assert identity(gpu="Orin NX", cc="8.7")[0].startswith("model.fp16.engine was built on Orin")
    compatible = {**ENTRY, "version_compatible": True, "hardware_compatibility": "AMPERE_PLUS"}
    assert identity(compatible, trt="10.7.0", gpu="RTX 4090", cc="8.9") == []
    with pytest.raises(EngineMismatchError, match="older than"):
        identity(compatible, trt="10.2.0")
    with pytest.raises(EngineMismatchError, match="Ampere or newer"):
        identity(compatible, gpu="Xavier", cc="7.2")


def test_engine_identity_compares_the_full_compute_capability_and_tensorrt_version():
    ampere = {**ENTRY, "tensorrt": "10.3.0", "gpu": "RTX 3090", "compute_capability": "8.6"}
    with pytest.raises(EngineMismatchError, match=r"RTX 3090 \(compute 8\.6\), this is RTX 4090 \(compute 8\.9\)"):
        identity(ampere, gpu="RTX 4090", cc="8.9")  # same major, another architecture
    with pytest.raises(EngineMismatchError, match=r"built with TensorRT 10\.3\.0, this is TensorRT 10\.3\.1"):
        identity(ampere, trt="10.3.1", gpu="RTX 3090", cc="8.6")  # a patch release: engines are not portable
    assert identity(ampere, trt="10.3.0.26", gpu="RTX 3090", cc="8.6") == []  # the build number is not compared
    with pytest.raises(EngineMismatchError, match="older than"):
        identity({**ampere, "version_compatible": True}, trt="10.2.9", gpu="RTX 3090", cc="8.6")
    assert identity({**ampere, "version_compatible": True}, trt="10.3.1", gpu="RTX 3090", cc="8.6") == []


def test_layer_report_from_inspector_json():
    info = {"Layers": [
        {"Name": "conv1 + relu", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "t1", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "q1", "LayerType": "Reformat",
         "Outputs": [{"Name": "t2", "Format/Datatype": "Row major Int8 format"}]},
        {"Name": "{ForeignNode[conv2...conv9]}", "LayerType": "DLA",
         "Outputs": [{"Name": "t3", "Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "argmax", "LayerType": "TopK", "Outputs": [{"Name": "labels", "Format/Datatype": "Row major UInt8"}]},
    ], "Bindings": ["image", "labels"]}
    report = layer_report(json.dumps(info))
    assert [x["precision"] for x in report["layers"]] == ["fp16", "int8", "fp16", "uint8"]
    assert report["by_device"] == {"GPU": 3, "DLA": 1}
    names_only = layer_report(json.dumps({"Layers": ["a", "b"]}))
    assert names_only["by_precision"] == {"None": 2}
    with pytest.raises(EdgesegError, match="unreadable"):
        layer_report("{not json")


class FakeRuntime:
    """cuda-python's calling convention: (status, *values); status 0 is success."""

    class cudaMemcpyKind:  # noqa: N801 - CUDA's name
        cudaMemcpyHostToDevice = 1

    def __init__(self):
        self.calls = []

    def cudaGetErrorName(self, status):  # noqa: N802
        return 0, b"cudaErrorInvalidValue"

    def cudaGetErrorString(self, status):  # noqa: N802
        return 0, b"invalid argument"

    def cudaMemcpyAsync(self, *args):  # noqa: N802
        self.calls.append(args)
        return (1,)

    def cudaMalloc(self, n):  # noqa: N802
        return 0, 4096


def test_cuda_status_becomes_a_clear_error():
    api = CudaPython.__new__(CudaPython)
    api.rt = FakeRuntime()
    assert api.check(api.rt.cudaMalloc(10), "cudaMalloc") == 4096
    buffer = DeviceBuffer(api, 4096, 16)
    with pytest.raises(CudaError, match="do not fit a 16-byte buffer"):
        api.htod(buffer, np.zeros(32, np.uint8), stream=None)
    assert api.rt.calls == []  # refused before any CUDA call
    with pytest.raises(CudaError, match=r"cudaMemcpyAsync\(cudaMemcpyHostToDevice\) failed: cudaErrorInvalidValue: "
                                        r"invalid argument"):
        api.htod(buffer, np.zeros(16, np.uint8), stream=None)
    with pytest.raises(CudaError, match="C-contiguous"):
        api.htod(buffer, np.zeros((4, 8), np.uint8)[:, ::2], stream=None)


def test_no_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cuda_module, "_cached", None)
    monkeypatch.setattr(cuda_module, "installed_bindings", lambda: [])
    with pytest.raises(CudaError, match="no CUDA binding: pip install cuda-python"):
        get_cuda()


def test_tensorrt_backend_and_build_without_tensorrt(tmp_path, cli):
    from edgeseg.runtime.backends import backend_missing

    if backend_missing("tensorrt") is None:
        pytest.skip("TensorRT is installed here")
    bundle = make_threshold_bundle(tmp_path / "b")
    r = cli("build", str(bundle), "--precision", "fp32")
    assert r.returncode == 1 and "TensorRT" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("run", str(bundle), "--source", str(tmp_path), "--backend", "tensorrt")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_bench_plans_engines_when_tensorrt_works(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b")
    (bundle / "model.fp16.engine").write_bytes(b"plan")
    from edgeseg.runtime.bundle import open_bundle

    b = open_bundle(bundle)
    b.add_file("model.fp16.engine", "engine", precision="fp16",
               engine=EngineRecord(tensorrt="10.3.0", gpu="Orin", compute_capability="8.7"))
    b.save()
    targets = plan_targets([bundle], missing=lambda backend: None)
    assert ("tensorrt", "fp16") in {(t.backend, t.precision) for t in targets}
    targets = plan_targets([bundle], missing=lambda backend: "absent" if backend == "tensorrt" else None)
    assert "tensorrt" not in {t.backend for t in targets}


@pytest.mark.cuda
def test_cuda_round_trip_with_pinned_memory_and_events():
    cuda = get_cuda()
    stream = cuda.stream()
    host = cuda.pinned((1024,), np.float32)
    host[:] = np.arange(1024, dtype=np.float32)
    a, b = cuda.malloc(host.nbytes), cuda.malloc(host.nbytes)
    back = cuda.pinned((1024,), np.float32)
    start, end = cuda.event(), cuda.event()
    cuda.record(start, stream)
    cuda.htod(a, host, stream)
    cuda.dtod(b, a, host.nbytes, stream)
    cuda.dtoh(back, b, stream)
    cuda.record(end, stream)
    cuda.synchronize(stream)
    np.testing.assert_array_equal(back, host)
    assert cuda.elapsed_ms(start, end) >= 0
    free, total = cuda.mem_info()
    assert 0 < free <= total
    for buffer in (a, b):
        buffer.free()
    cuda.free_pinned(host)
    cuda.free_pinned(back)


@pytest.mark.tensorrt
def test_tensorrt_build_and_run_match_onnxruntime(tmp_path):
    from edgeseg.runtime.build import build_engine
    from edgeseg.runtime.load import load_runner

    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    result = build_engine(bundle, BuildOptions(precision="fp32"))
    image = np.random.default_rng(0).integers(0, 256, (1, 8, 12, 3), dtype=np.uint8)
    with load_runner(bundle, "tensorrt") as trt_runner, load_runner(bundle, "onnxruntime") as ort_runner:
        np.testing.assert_array_equal(trt_runner.infer({"image": image})["labels"],
                                      ort_runner.infer({"image": image})["labels"])
        assert set(trt_runner.last_stages_ms) == {"h2d", "compute", "d2h"}
    assert result["entry"]["kind"] == "engine"
