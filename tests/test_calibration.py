"""INT8 / FP16 variants: Q/DQ structure, the TensorRT cache format, readers, the gate and the search."""

import json
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from edgeseg.calibration.cache import hex_to_scale, read_cache, scale_to_hex, write_cache
from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle
from edgeseg.calibration.readers import load_calibration_set
from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import ExportOptions
from edgeseg.runtime.bundle import open_bundle
from edgeseg.runtime.engine_plan import BuildOptions, plan_build
from edgeseg.runtime.load import load_runner
from edgeseg.workflow import export_with_variants

TRAINED = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "lednet.pt"
SIZE = (64, 128)


def test_cache_format_round_trips_and_matches_the_spec(tmp_path):
    write_cache(tmp_path / "calib.cache", {"conv1_out": 12.7, "relu_2": 0.0}, version="100300")
    lines = (tmp_path / "calib.cache").read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    name, hexval = lines[1].split(": ")
    assert name == "conv1_out" and hexval == struct.pack(">f", 0.1).hex()  # 12.7 / 127
    version, algorithm, scales = read_cache(tmp_path / "calib.cache")
    assert (version, algorithm) == ("100300", "EntropyCalibration2")
    assert scales["conv1_out"] == pytest.approx(0.1) and scales["relu_2"] > 0
    assert hex_to_scale(scale_to_hex(0.0123)) == pytest.approx(0.0123)
    (tmp_path / "bad.cache").write_text("TRT-1-X\nname: zz\n")
    with pytest.raises(EdgesegError):
        read_cache(tmp_path / "bad.cache")
    (tmp_path / "worse.cache").write_text("hello\n")
    with pytest.raises(EdgesegError, match="not a TensorRT calibration cache"):
        read_cache(tmp_path / "worse.cache")


def test_reader_skips_unreadable_files_and_refuses_empty_sources(tmp_path):
    good = tmp_path / "imgs" / "sub"
    good.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), i * 40, np.uint8)).save(good / f"{i}.png")
    (good / "broken.jpg").write_bytes(b"not a jpeg")
    calib = load_calibration_set(str(tmp_path / "imgs"), SIZE, seed=1)
    assert len(calib.images) == 3 and len(calib.skipped) == 1
    assert all(im.shape == (*SIZE, 3) and im.dtype == np.uint8 for im in calib.images)
    assert calib.fingerprint() == load_calibration_set(str(tmp_path / "imgs"), SIZE, seed=1).fingerprint()
    assert len(load_calibration_set("synthetic:5", SIZE).images) == 5
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "a.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    for spec, msg in ((tmp_path / "empty", "no .jpg"), (tmp_path / "corrupt", "no usable image"),
                      (tmp_path / "nope", "not found"), (tmp_path / "notes.txt", "neither")):
        with pytest.raises(EdgesegError, match=msg):
            load_calibration_set(str(spec), SIZE)


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "b"
    calibration = CalibrationOptions(calib_data="synthetic:8", calib_size=8, eval_images=6, max_miou_drop=50.0)
    export_with_variants(out, checkpoint=str(TRAINED), options=ExportOptions(input_size=SIZE), calibration=calibration)
    return out


def test_variants_files_and_manifest(int8_bundle):
    bundle = open_bundle(int8_bundle)
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "calib.cache", "calibration.json"):
        bundle.path(name)  # listed, present, hash matches
    variants = bundle.manifest.report("variants")
    assert set(variants) == {"fp32", "fp16", "int8"}
    for v in variants.values():
        assert 0 <= v["miou"] <= 1 and "miou_drop" in v and 0 <= v["label_agreement"] <= 1
    assert abs(variants["fp16"]["miou_drop"]) < 1.0 and variants["fp16"]["label_agreement"] > 0.99
    assert variants["int8"]["bytes"] == (int8_bundle / "model.int8.onnx").stat().st_size  # the gate scored it
    assert bundle.manifest.report("gate")["passed"] is True
    assert bundle.manifest.calibration.identity.input_size == list(SIZE)
    assert _legacy_plan(bundle.manifest).calibration_cache == "calib.cache"  # the build takes this cache
    _, _, scales = read_cache(bundle.path("calib.cache"))
    assert len(scales) > 20 and all(s > 0 for s in scales.values())


def test_qdq_structure_is_what_tensorrt_accepts(int8_bundle):
    from qdq_checks import dq_inputs, float32_ops, int8_in_the_head, output_qdq, scale_types

    model = onnx.load(str(int8_bundle / "model.int8.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    qnodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qnodes
    for n in qnodes:
        zero_point = inits[n.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any()
    weight_dq = [n for n in qnodes if n.op_type == "DequantizeLinear" and inits[n.input[1]].size > 1]
    assert weight_dq, "per-channel weights"
    assert all(inits[n.input[0]].dtype == np.int8 for n in weight_dq)  # int8 initializers, not float32 + Q
    consumers = {i: n for n in model.graph.node for i in n.input}
    axes = {(consumers[n.output[0]].op_type, next((a.i for a in n.attribute if a.name == "axis"), 1))
            for n in weight_dq}  # ONNX's default axis is 1
    assert axes == {("Conv", 0)}  # output channels (LEDNet has no ConvTranspose, Gemm or MatMul)
    assert output_qdq(model) == [] and int8_in_the_head(model) == []
    fp16 = onnx.load(str(int8_bundle / "model.fp16.onnx"))
    assert float32_ops(model) == float32_ops(fp16) and "Conv" not in float32_ops(model)
    assert scale_types(model) == {onnx.TensorProto.FLOAT16}
    int8 = open_bundle(int8_bundle).manifest.report("variants")["int8"]
    heads, narrow = set(int8["logits_heads"]), set(int8["narrow_convs_fp16"])
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(heads) == 5  # LEDNet's attention pyramid ends in five convolutions
    assert len(narrow) == 3  # its 3→29 first conv and two 1-channel attention convs stay FP16
    assert all(dq_inputs(model, c) == ([] if c.name in heads | narrow else [0, 1]) for c in convs)
    assert not any(n.op_type == "Add" and n.input[2:] for n in model.graph.node)
    assert (int8_bundle / "model.int8.onnx").stat().st_size < 0.4 * (int8_bundle / "model.onnx").stat().st_size


def _legacy_plan(manifest):
    """The TensorRT 10 legacy-calibrator build of a bundle with this manifest: the one that reads calib.cache."""
    return plan_build(manifest.files, BuildOptions(precision="int8", legacy_calibrator=True), trt_version="10.3.0",
                      num_dla_cores=0, gpu_compute_capability="8.7", calibration=manifest.calibration,
                      input_size=manifest.input.size)


def test_stale_cache_is_detected(int8_bundle):
    import copy

    manifest = open_bundle(int8_bundle).manifest
    for key, value in (("onnx_sha256", "0" * 64), ("input_size", [SIZE[0], 2 * SIZE[1]])):
        stale = copy.deepcopy(manifest)
        setattr(stale.calibration.identity, key, value)
        with pytest.raises(EdgesegError, match="another model or input size"):
            _legacy_plan(stale)


def test_eval_scores_the_int8_variant(int8_bundle, cli):
    r = cli("eval", str(int8_bundle), "--precision", "int8", "--data", "synthetic", "--max-images", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "int8"


def test_sensitivity_search_runs_and_records_steps(int8_bundle, tmp_path):
    import shutil

    copy = tmp_path / "search"
    shutil.copytree(int8_bundle, copy)
    options = CalibrationOptions(calib_data="synthetic:8", calib_size=8, eval_images=6, fp16=False,
                                 max_search_steps=2)
    options.max_miou_drop = -100.0  # impossible, to force the search (the constructor refuses negative budgets)
    summary = calibrate_bundle(copy, options)
    assert summary["gate"]["passed"] is False  # an impossible budget fails, keeping the best result
    report = json.loads((copy / "sensitivity.json").read_text())
    assert [s["step"] for s in report["steps"]] == [0, 1, 2]
    assert [len(s["excluded"]) for s in report["steps"]] == [0, 1, 2]
    assert report["ranking"][0]["added"] >= report["ranking"][-1]["added"]
    best = min(s["miou_drop"] for s in report["steps"])
    assert open_bundle(copy).manifest.report("variants")["int8"]["miou_drop"] == pytest.approx(best)


@pytest.fixture(scope="module")
def cpu_int8_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8cpu") / "cpu"
    calibration = CalibrationOptions(calib_data="synthetic:8", calib_size=8, eval_images=2, fp16=False,
                                     target="cpu", max_miou_drop=100.0)
    export_with_variants(out, checkpoint=str(TRAINED), options=ExportOptions(input_size=SIZE), calibration=calibration)
    return out


def test_cpu_target_uses_uint8_activations(cpu_int8_bundle):
    model = onnx.load(str(cpu_int8_bundle / "model.int8.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    dtypes = {inits[n.input[2]].dtype for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert np.dtype(np.uint8) in dtypes
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in producers
             and producers[n.input[1]].op_type == "DequantizeLinear"]
    assert convs
    for conv in convs:  # weights per output channel: one scale per filter, on axis 0
        dq = producers[conv.input[1]]
        weight = dq.input[0] if dq.input[0] in inits else producers[dq.input[0]].input[0]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        assert inits[dq.input[1]].size == inits[weight].shape[0] and axis == 0, conv.name
    assert not (cpu_int8_bundle / "calib.cache").exists()  # the TensorRT cache is for the TensorRT target


# Label agreement of OpenVINO with ONNX Runtime on the same file and frames (trained lednet, 64x128): fp32 and
# fp16 both compute in f32 on OpenVINO; INT8 kernels round differently (measured 0.97-0.99).
OPENVINO_AGREEMENT = {"fp32": 0.999, "fp16": 0.99, "int8": 0.95}


@pytest.mark.openvino
@pytest.mark.parametrize("target", ["tensorrt", "cpu"], ids=["trt-layout", "cpu-layout"])  # not "tensorrt": a mark
def test_openvino_runs_every_variant_like_onnxruntime(int8_bundle, cpu_int8_bundle, target):
    """Both INT8 layouts run on OpenVINO with their quantized layers in 8 bits (the TensorRT one, symmetric int8,
    is not refused), an fp16 file computes in f32 (said in ``compute``), and labels agree with ONNX Runtime."""
    bundle = int8_bundle if target == "tensorrt" else cpu_int8_bundle
    frames = np.stack([next(load_calibration_set("synthetic:4", SIZE).feeds(1))["image"][0],
                       np.random.default_rng(3).integers(0, 256, (*SIZE, 3), dtype=np.uint8)])
    precisions = ("fp32", "fp16", "int8") if target == "tensorrt" else ("fp32", "int8")
    for precision in precisions:
        with load_runner(bundle, "openvino", precision=precision) as ov, \
                load_runner(bundle, "onnxruntime", precision=precision) as ort:
            agree = np.mean([np.mean(ov.infer({"image": f[None]})["labels"] == ort.infer({"image": f[None]})["labels"])
                             for f in frames])
            assert agree >= OPENVINO_AGREEMENT[precision], (precision, agree)
            if precision == "int8":
                assert ov.compute.startswith("f32; ") and (" in u8" in ov.compute or " in i8" in ov.compute)
            else:
                assert ov.compute == "f32"


def test_bad_calibration_source_from_the_cli(tmp_path, cli_here, monkeypatch):
    cli = cli_here

    def no_export(*args, **kwargs):
        raise AssertionError("exported before the calibration source was checked")

    monkeypatch.setattr("edgeseg.workflow.export_bundle", no_export)  # refused before minutes of export
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a video")
    for spec in (str(tmp_path / "empty"), str(tmp_path / "missing"), str(tmp_path / "notes.txt")):
        out = tmp_path / "out"
        r = cli("export", "--model", "lednet", "--input-size", "64x64", "--int8", "--calib-data", spec,
                "--out", str(out))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("edgeseg: error: calibration")
        assert not out.exists()
    r = cli("export", "--model", "lednet", "--input-size", "64x64", "--int8", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "--calib-data" in r.stderr


def test_scales_read_back_from_qdq_match_the_calibration_ranges(int8_bundle):
    from edgeseg.calibration.qdq import amax_from_qdq, tensor_amax

    from_ranges = tensor_amax(int8_bundle / "calibration.json")
    from_model = amax_from_qdq(int8_bundle / "model.int8.onnx")
    shared = set(from_ranges) & set(from_model)
    assert len(shared) > 10
    for name in shared:
        assert from_model[name] == pytest.approx(from_ranges[name], rel=1e-3), name


def test_modelopt_quantizer_missing_is_a_clear_error(int8_bundle, tmp_path):
    pytest.importorskip("onnxruntime")
    try:
        import modelopt  # noqa: F401
        pytest.skip("modelopt is installed")
    except ImportError:
        pass
    from edgeseg.calibration.qdq import quantize_qdq
    from edgeseg.calibration.readers import load_calibration_set

    calib = load_calibration_set("synthetic:2", SIZE)
    with pytest.raises(EdgesegError, match="Model Optimizer"):
        quantize_qdq(int8_bundle / "model.onnx", tmp_path / "m.onnx", calib, ranges_cache=tmp_path / "r.json",
                     quantizer="modelopt")


def test_entropy_calibration_clips_ranges_unlike_minmax(int8_bundle, tmp_path):
    """onnxruntime's quantize_static runs entropy calibration with 128 bins folded to 128 levels, which is
    min-max in disguise; ours uses 2048 bins like TensorRT, so it must clip some ranges.

    On the trained LEDNet's first 10 convolutions (the graph cut after the 10th): a tensor's range depends only on
    the layers before it, so these are the whole model's ranges for those tensors, and the 2048-bin threshold
    search costs ~0.5 s per tensor (~2 minutes for the whole model's 227, 20 here)."""
    from edgeseg.calibration.qdq import quantize_qdq, tensor_amax
    from edgeseg.calibration.readers import load_calibration_set

    model = onnx.load(str(int8_bundle / "model.onnx"))
    tenth_conv = [n for n in model.graph.node if n.op_type == "Conv"][9]
    onnx.utils.extract_model(str(int8_bundle / "model.onnx"), str(tmp_path / "head.onnx"),
                             [i.name for i in model.graph.input], [tenth_conv.output[0]])
    calib = load_calibration_set("synthetic:4", SIZE)
    amax = {}
    for method in ("entropy", "minmax"):
        quantize_qdq(tmp_path / "head.onnx", tmp_path / f"{method}.onnx", calib, method=method,
                     ranges_cache=tmp_path / f"{method}.json")
        amax[method] = tensor_amax(tmp_path / f"{method}.json")
    assert amax["entropy"].keys() == amax["minmax"].keys() and len(amax["minmax"]) >= 12
    assert all(amax["entropy"][k] <= amax["minmax"][k] * (1 + 1e-6) for k in amax["minmax"])
    clipped = sum(amax["entropy"][k] < 0.9 * amax["minmax"][k] for k in amax["minmax"])
    assert clipped > len(amax["minmax"]) // 4
