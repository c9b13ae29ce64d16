"""``edgeseg build`` and the TensorRT runner, driven through fakes of TensorRT and CUDA (tests/fake_tensorrt.py):
what edgeseg asks of TensorRT, in what order, and what it writes. The same code runs on real TensorRT in the
``tensorrt``-marked tests of tests/test_engine.py."""

import json
import threading
import types

import numpy as np
import pytest
from bench_fixtures import H, W, calibration_record, make_threshold_bundle, threshold_onnx
from fake_tensorrt import FakeCuda, install, make_tensorrt

from edgeseg.errors import EdgesegError
from edgeseg.runtime.build import build_engine
from edgeseg.runtime.bundle import open_bundle, tensor_specs
from edgeseg.runtime.engine_plan import BuildOptions
from edgeseg.runtime.legacy_calibrator import CalibrationFeeder, retarget_cache_header
from edgeseg.runtime.tensorrt_runner import TensorRTRunner


def _calls(trt, kind):
    return [c for c in trt.calls if c[0] == kind]


def _build(monkeypatch, bundle, options, trt=None, cuda=None, images=None):
    trt = trt or make_tensorrt()
    cuda = cuda or FakeCuda()
    install(monkeypatch, trt, cuda)
    return trt, cuda, build_engine(bundle, options, calibration_images=images)


def test_version_compatible_engine_is_loaded_with_host_code_allowed(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b")
    trt, _, result = _build(monkeypatch, bundle, BuildOptions(precision="fp32", version_compatible=True))
    assert ("flag", "VERSION_COMPATIBLE") in trt.calls
    assert _calls(trt, "deserialize") == [("deserialize", {"engine_host_code_allowed": True, "DLA_core": -1})]
    trt = make_tensorrt()
    install(monkeypatch, trt, FakeCuda())
    from edgeseg.runtime.engine_plan import runtime_settings

    record = open_bundle(bundle).entry("model.fp32.engine").engine
    with TensorRTRunner(result["engine"], settings=runtime_settings(record)):
        pass
    assert _calls(trt, "deserialize")[0][1]["engine_host_code_allowed"] is True


def test_dla_engine_runs_on_its_core_and_records_its_dla_layers(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0, "fp16": 127.0})
    layers = [{"Name": "image to nvm", "LayerType": "Reformat", "Outputs": [{"Format/Datatype": "FP16"}]},
              {"Name": "{ForeignNode[ReduceMean...Greater]}", "LayerType": "ForeignNode",
               "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
              {"Name": "Cast", "LayerType": "Cast", "Outputs": [{"Format/Datatype": "UInt8"}]}]
    trt = make_tensorrt(dla_cores=2, layers=layers)
    trt, _, result = _build(monkeypatch, bundle, BuildOptions(precision="fp16", dla_core=1), trt=trt)
    assert ("flag", "GPU_FALLBACK") in trt.calls  # implied: UINT8 I/O and Cast cannot run on DLA
    assert _calls(trt, "deserialize")[0][1]["DLA_core"] == 1
    entry = result["entry"]
    assert entry["dla_core"] == 1 and entry["dla_layers"] == ["{ForeignNode[ReduceMean...Greater]}"]
    from edgeseg.runtime.load import engine_runner

    trt = make_tensorrt(dla_cores=2)
    install(monkeypatch, trt, FakeCuda())
    monkeypatch.setattr("edgeseg.runtime.cuda.get_cuda", lambda prefer=None: FakeCuda())
    with engine_runner(open_bundle(bundle), "model.fp16.dla1.engine", 1, False):
        pass
    assert _calls(trt, "deserialize")[0][1]["DLA_core"] == 1  # set before deserializing, from the manifest


def _dynamic_bundle(root):
    root.mkdir()
    from edgeseg.runtime.bundle import Bundle
    from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo

    inputs, outputs = tensor_specs(("image",), ("labels",), "batch", (H, W), 2)
    bundle = Bundle(root, Manifest(ModelInfo("tiny", ["dark", "bright"]), InputSpec((H, W), "batch"),
                                   inputs=inputs, outputs=outputs))
    threshold_onnx(root / "model.onnx", 127.0, batch="batch")
    bundle.add_file("model.onnx", "onnx", precision="fp32")
    bundle.save()
    return root


def test_dynamic_batch_gets_an_optimization_profile(tmp_path, monkeypatch):
    bundle = _dynamic_bundle(tmp_path / "b")
    trt, _, result = _build(monkeypatch, bundle, BuildOptions(precision="fp32", max_batch=4, opt_batch=2))
    assert _calls(trt, "profile") == [("profile", "image", (1, H, W, 3), (2, H, W, 3), (4, H, W, 3))]
    assert ("add_profile",) in trt.calls
    assert result["entry"]["profile"] == {"image": [[1, H, W, 3], [2, H, W, 3], [4, H, W, 3]]}
    with pytest.raises(EdgesegError, match="--opt-batch"):
        _build(monkeypatch, bundle, BuildOptions(precision="fp32", max_batch=2, opt_batch=3))


def test_legacy_calibrator_feeds_float32_batches_of_the_input_shape(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    images = np.full((3, H, W, 3), 200, np.uint8)
    trt, cuda, _ = _build(monkeypatch, bundle, BuildOptions(precision="int8", legacy_calibrator=True,
                                                            calib_data="x"), trt=make_tensorrt("10.3.0"),
                          images=images)
    fed = [c for c in cuda.copies if c[0] == "htod"]
    assert len(_calls(trt, "batch")) == 3 and len(fed) == 3
    # TensorRT reads float32 for a non-float (uint8) input: the whole batch, NHWC as the graph input
    assert all(c[1:4] == (H * W * 3 * 4, "float32", (1, H, W, 3)) and c[4] == 200.0 * H * W * 3 for c in fed)
    assert cuda.live["buffers"] == 0 and cuda.live["streams"] == 0  # the calibrator's buffer and stream freed
    manifest = open_bundle(bundle).manifest
    assert "calib.cache" in manifest.files and manifest.calibration is not None and manifest.calibration.images == 3
    assert manifest.calibration.identity.trt_version == "100300"  # the header's number, as calibrate records it


def test_a_failing_calibration_batch_fails_the_build(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    cuda = FakeCuda()

    def broken(*args):
        raise RuntimeError("device lost")

    cuda.htod = broken
    with pytest.raises(EdgesegError, match="INT8 calibration failed: device lost"):
        _build(monkeypatch, bundle, BuildOptions(precision="int8", legacy_calibrator=True, calib_data="x"),
               trt=make_tensorrt("10.3.0"), cuda=cuda, images=np.zeros((2, H, W, 3), np.uint8))
    assert not (bundle / "model.int8.legacy.engine").exists()


def test_calibration_feeder_batches_and_refusals(tmp_path):
    cuda = FakeCuda()
    feeder = CalibrationFeeder(cuda, tmp_path / "c", np.ones((5, H, W, 3), np.uint8), batch=2, trt_version="10.3",
                               read_cache=False)
    assert feeder.get_batch_size() == 2 and feeder.buffer.nbytes == 2 * H * W * 3 * 4
    assert feeder.get_batch(["image"]) and feeder.get_batch(["image"]) and feeder.get_batch(["image"]) is None
    feeder.check()
    feeder.free()
    assert cuda.live == {"buffers": 0, "streams": 0, "events": 0, "graphs": 0, "pinned": 0}
    empty = CalibrationFeeder(cuda, tmp_path / "c", np.ones((2, H, W, 3), np.uint8), batch=2, trt_version="10.3",
                              read_cache=False)
    with pytest.raises(EdgesegError, match="read no batch"):
        empty.check()
    with pytest.raises(EdgesegError, match="at least 4 images"):
        CalibrationFeeder(cuda, tmp_path / "c", np.ones((2, H, W, 3), np.uint8), batch=4, trt_version="10.3",
                          read_cache=False)


def test_build_hands_the_cache_to_tensorrt_with_its_own_version_header(tmp_path, monkeypatch):
    from edgeseg.calibration.cache import write_cache

    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    write_cache(bundle / "calib.cache", {"image": 255.0, "onnx::Cast_1:0": 3.0})  # shipped for 10.3
    b = open_bundle(bundle)
    b.add_file("calib.cache", "calibration-cache", precision="int8")
    b.manifest.calibration = calibration_record(b.entry("model.onnx").sha256, (H, W))
    b.save()
    trt, _, _ = _build(monkeypatch, bundle, BuildOptions(precision="int8", legacy_calibrator=True),
                       trt=make_tensorrt("10.13.2"))
    assert _calls(trt, "calibration_cache") == [("calibration_cache", b"TRT-101302-EntropyCalibration2")]
    assert (bundle / "calib.cache").read_text().startswith("TRT-100300-")  # the shipped file is unchanged
    assert retarget_cache_header(b"TRT-100300-EntropyCalibration2\na: 3c010a14\n", "10.3.0") == \
        b"TRT-100300-EntropyCalibration2\na: 3c010a14\n"


def test_an_unlisted_calib_cache_is_never_read(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    (bundle / "calib.cache").write_text("TRT-100300-EntropyCalibration2\nimage: 3c010a14\n")  # stale, unlisted
    trt, _, _ = _build(monkeypatch, bundle, BuildOptions(precision="int8", legacy_calibrator=True, calib_data="x"),
                       trt=make_tensorrt("10.3.0"), images=np.zeros((2, H, W, 3), np.uint8))
    assert _calls(trt, "calibration_cache") == [("calibration_cache", None)] and len(_calls(trt, "batch")) == 2


def test_an_engine_that_cannot_be_loaded_back_is_not_written(tmp_path, monkeypatch):
    bundle = make_threshold_bundle(tmp_path / "b")
    with pytest.raises(EdgesegError, match="cannot load it back"):
        _build(monkeypatch, bundle, BuildOptions(precision="fp32", timing_cache=str(tmp_path / "t.cache")),
               trt=make_tensorrt(loadable=False))
    assert not (bundle / "model.fp32.engine").exists() and not (tmp_path / "t.cache").exists()
    assert "model.fp32.engine" not in open_bundle(bundle).files


def test_a_timing_cache_that_cannot_be_saved_keeps_the_engine(tmp_path, monkeypatch, caplog):
    bundle = make_threshold_bundle(tmp_path / "b")
    _, _, result = _build(monkeypatch, bundle, BuildOptions(precision="fp32", timing_cache=str(tmp_path / "t")),
                          trt=make_tensorrt(timing_cache_fails=True))
    assert (bundle / "model.fp32.engine").read_bytes() == b"serialized plan"
    assert "model.fp32.engine" in open_bundle(bundle).files and "timing cache" in caplog.text


def _runner(monkeypatch, cuda, trt, **kwargs):
    install(monkeypatch, trt, cuda)
    return TensorRTRunner("/nonexistent.engine", **kwargs)


def test_cuda_graph_capture_failure_falls_back_to_plain_enqueue(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    image = np.zeros((1, 8, 12, 3), np.uint8)
    cuda, trt = FakeCuda(capture_fails=True), make_tensorrt()
    install(monkeypatch, trt, cuda)
    with TensorRTRunner(engine, cuda_graph=True) as runner:
        for _ in range(3):
            runner.infer({"image": image})
        slot = runner._pool.all[0]
        assert slot.graph is None and slot.graph_failed and cuda.aborted == 1 and cuda.launched == 0
    assert len(_calls(trt, "execute")) == 4  # three runs + the one capture attempt; no retry per frame
    cuda, trt = FakeCuda(), make_tensorrt()
    install(monkeypatch, trt, cuda)
    with TensorRTRunner(engine, cuda_graph=True) as runner:
        runner.infer({"image": image})
        runner.infer({"image": image})
        assert cuda.launched == 1
    assert cuda.live == {"buffers": 0, "streams": 0, "events": 0, "graphs": 0, "pinned": 0}  # all released


def test_a_refused_input_shape_is_an_error(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    install(monkeypatch, make_tensorrt(shapes_ok=False), FakeCuda())
    with pytest.raises(EdgesegError, match="refused shape 1x8x12x3 for input 'image'"):
        TensorRTRunner(engine).activate()


def test_a_chained_engine_input_must_match_in_dtype_and_shape(tmp_path):
    from edgeseg.runtime.runner import TensorSpec
    from edgeseg.runtime.tensorrt_runner import check_chain

    model = [(TensorSpec("image", "uint8", (1, 8, 12, 3)), True), (TensorSpec("logits", "float32", (1, 2, 8, 12)),
                                                                   False)]
    check_chain("m", model, "crf", [(TensorSpec("logits", "float32", (1, 2, 8, 12)), True)])
    with pytest.raises(EdgesegError, match="reads logits as float16 1x2x8x12, but m has it as float32"):
        check_chain("m", model, "crf", [(TensorSpec("logits", "float16", (1, 2, 8, 12)), True)])
    with pytest.raises(EdgesegError, match="reads logits as float32 1x3x8x12"):
        check_chain("m", model, "crf", [(TensorSpec("logits", "float32", (1, 3, 8, 12)), True)])
    with pytest.raises(EdgesegError, match="needs probs"):
        check_chain("m", model, "crf", [(TensorSpec("probs", "float32", (1, 2, 8, 12)), True)])


def test_pycuda_makes_the_primary_context_current_in_each_worker_thread(monkeypatch):
    import sys

    from edgeseg.runtime.cuda import PyCuda

    current = threading.local()
    pushes = []

    class Error(Exception):
        pass

    class Primary:
        def push(self):
            pushes.append(threading.get_ident())
            current.ctx = self

    def needs_context(*args):
        if getattr(current, "ctx", None) is None:
            raise Error("invalid device context")
        return 1, 2

    def pop():
        current.ctx = None

    driver = types.SimpleNamespace(Error=Error, init=lambda: None, mem_get_info=needs_context,
                                   Device=lambda i: types.SimpleNamespace(retain_primary_context=Primary),
                                   Context=types.SimpleNamespace(pop=staticmethod(pop)))
    pycuda = types.ModuleType("pycuda")
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setitem(sys.modules, "pycuda.autoprimaryctx", types.ModuleType("pycuda.autoprimaryctx"))
    api = PyCuda()
    results = []
    worker = threading.Thread(target=lambda: results.append(api.mem_info()))
    worker.start()
    worker.join()
    assert results == [(1, 2)] and worker.ident in pushes
    assert getattr(current, "ctx", None) is None  # popped again in this thread too
    with api.context(), api.context():  # nested: pushed once
        assert api.mem_info() == (1, 2)
    assert pushes.count(threading.get_ident()) == 1


def test_layer_report_reads_every_tensor_and_both_field_layouts():
    from edgeseg.runtime.engine_plan import layer_report

    info = {"Layers": [
        {"Name": "conv + dq", "LayerType": "CaskConvolution",  # INT8 convolution, FP32 output (TensorRT 10)
         "Inputs": [{"Name": "x", "Format/Datatype": "Channel major Int8 format"}],
         "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32 format"}]},
        {"Name": "add", "LayerType": "PointWiseV2",  # TensorRT 11: Format and Datatype apart
         "Inputs": [{"Name": "y", "Format": "Row major linear", "Datatype": "Half"}],
         "Outputs": [{"Name": "z", "Format": "Row major linear", "Datatype": "Half"},
                     {"Name": "z2", "Format": "Row major linear", "Datatype": "Float"}]},
        {"Name": "{ForeignNode[conv2...conv9]}", "LayerType": "Myelin",
         "Outputs": [{"Name": "w", "Datatype": "Float"}]}]}
    report = layer_report(json.dumps(info))
    assert [x["precision"] for x in report["layers"]] == ["int8", "fp16", "fp32"]
    assert report["layers"][1]["outputs"] == ["fp16", "fp32"]
    assert report["by_device"] == {"GPU": 3} and report["dla_layers"] == []  # a GPU Myelin subgraph
    dla = layer_report(json.dumps({"Layers": [{"Name": "{ForeignNode[conv1...conv9]}", "LayerType": "ForeignNode",
                                               "Outputs": [{"Datatype": "Half"}]}]}), dla=True)
    assert dla["dla_layers"] == ["{ForeignNode[conv1...conv9]}"]


# -- on real TensorRT (skipped where it is missing): the same paths, end to end ----------------------------------

@pytest.mark.tensorrt
def test_real_version_compatible_dynamic_batch_engine_runs_with_a_cuda_graph(tmp_path):
    from bench_fixtures import reference_labels

    from edgeseg.runtime.load import load_runner

    bundle = _dynamic_bundle(tmp_path / "d")
    result = build_engine(bundle, BuildOptions(precision="fp32", version_compatible=True, max_batch=4, opt_batch=2))
    assert result["entry"]["version_compatible"] and result["entry"]["profile"]["image"][2][0] == 4
    image = np.random.default_rng(1).integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    with load_runner(bundle, "tensorrt", cuda_graph=True) as runner:
        for _ in range(3):
            labels = runner.infer({"image": image})["labels"]
    np.testing.assert_array_equal(labels[0], reference_labels(image[0], 127.0))


@pytest.mark.tensorrt
def test_real_legacy_calibration_cache_header_is_the_installed_version(tmp_path):
    import tensorrt

    from edgeseg.runtime.trt_features import cache_version_number, has_feature

    if not has_feature("legacy_calibrator", tensorrt.__version__):
        pytest.skip(f"TensorRT {tensorrt.__version__} has no INT8 calibrators")
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    images = np.random.default_rng(2).integers(0, 256, (4, H, W, 3), dtype=np.uint8)
    build_engine(bundle, BuildOptions(precision="int8", legacy_calibrator=True, calib_data="x"),
                 calibration_images=images)
    header = (bundle / "calib.cache").read_text().splitlines()[0]
    assert header == f"TRT-{cache_version_number(tensorrt.__version__)}-EntropyCalibration2"
