"""Promises the mutation check found unguarded (``tests/mutations.json``, ids ``g-…``): label agreement is the
worst check and the export refuses below the minimum; the mIoU drop is in points and the gate covers every
variant; confusion counts never overflow; every TensorRT lint code; exact Q/DQ weight axes."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bench_fixtures import CLASSES, make_threshold_bundle, make_threshold_data, reference_labels, threshold_onnx
from onnx import TensorProto, helper, numpy_helper

import edgeseg.calibration.pipeline as calibration_pipeline
import edgeseg.export.pipeline as export_pipeline
from edgeseg.calibration.gate import gate_verdict
from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle
from edgeseg.errors import EdgesegError
from edgeseg.export.lint import lint_model
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.export.verify import verify_onnx
from edgeseg.metrics import ConfusionMatrix, miou_drop_points
from edgeseg.models.deploy import DeployModel
from edgeseg.runtime.bundle import open_bundle

SIZE = (32, 64)


# -- label agreement: the worst check, and the export refuses below --min-agreement ---------------------------

def _zero_label_graph(h: int, w: int):
    """uint8 NHWC image → logits all zero over 3 channels → labels all 0 (ArgMax picks the first)."""
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "zero"], ["z"]),
             helper.make_node("Transpose", ["z"], ["logits"], perm=[0, 3, 1, 2]),
             helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
             helper.make_node("Cast", ["idx"], ["idx_f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["idx_f"], ["labels"], to=TensorProto.UINT8)]
    graph = helper.make_graph(nodes, "zeros", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, h, w, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, h, w])],
                              [numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


class _Channels(torch.nn.Module):
    """The normalised channels as 3-class logits: torch labels each pixel with its brightest channel."""

    def forward(self, x):
        return x


def test_label_agreement_is_the_worst_check():
    h, w = 4, 6
    red = np.zeros((h, w, 3), np.uint8)
    red[..., 0] = 255  # channel 0 brightest: torch says 0, like the graph
    deploy = DeployModel(_Channels(), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    result = verify_onnx(_zero_label_graph(h, w), deploy, (h, w), [red, red], random_batches=2, seed=3)
    rng = np.random.default_rng(3)  # the random images verify_onnx draws, in order
    randoms = [rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) for _ in range(2)]
    expected = [float(np.mean(np.argmax(image, axis=-1) == 0)) for image in randoms]
    assert [(c["source"], c["label_agreement"]) for c in result["checks"]] == [
        ("random", expected[0]), ("random", expected[1]), ("data", 1.0), ("data", 1.0)]
    assert max(expected) < 0.7
    assert result["label_agreement"] == min(expected)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """One real export of a tiny LEDNet: its checkpoint and ONNX let the tests below skip the exporter."""
    out = tmp_path_factory.mktemp("tiny") / "b"
    export_bundle(out, model_name="lednet", options=ExportOptions(input_size=SIZE, num_classes=2, simplify="none"))
    return out


def _export_reusing(tiny_export, out, monkeypatch, agreement, minimum):
    """Export ``tiny_export``'s checkpoint again (its ONNX copied, not re-exported), verification reporting
    ``agreement``."""
    real_verify = export_pipeline.verify_onnx

    def copy_onnx(deploy, path, **_):
        shutil.copyfile(tiny_export / "model.onnx", path)
        return 18

    monkeypatch.setattr(export_pipeline, "export_onnx", copy_onnx)
    monkeypatch.setattr(export_pipeline, "verify_onnx",
                        lambda *a, **k: {**real_verify(*a, **k), "label_agreement": agreement})
    return export_bundle(out, checkpoint=str(tiny_export / "model.pt"),
                         options=ExportOptions(input_size=SIZE, simplify="none", min_agreement=minimum))


def test_export_records_the_worst_check(tiny_export):
    bundle = open_bundle(tiny_export)
    checks = json.loads(bundle.path("verify.json").read_text())["checks"]
    assert len(checks) == 2
    assert bundle.manifest.report("verification")["label_agreement"] == min(c["label_agreement"] for c in checks)


def test_export_below_min_agreement_fails_and_leaves_nothing(tiny_export, tmp_path, monkeypatch):
    with pytest.raises(EdgesegError, match=r"agrees with torch on only 98\.000% of the labels \(minimum 99\.0%\)"):
        _export_reusing(tiny_export, tmp_path / "out", monkeypatch, agreement=0.98, minimum=0.99)
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging folder


def test_export_at_min_agreement_passes(tiny_export, tmp_path, monkeypatch):
    bundle = _export_reusing(tiny_export, tmp_path / "out", monkeypatch, agreement=0.99, minimum=0.99)
    assert bundle.manifest.report("verification")["label_agreement"] == 0.99
    assert bundle.manifest.report("verification")["min_agreement"] == 0.99
    open_bundle(tmp_path / "out").path("model.onnx")


# -- the mIoU drop (points) and the gate over every variant ----------------------------------------------------

@pytest.mark.parametrize("reference, miou, points", [(0.8000, 0.7900, 1.0), (0.70, 0.68, 2.0), (0.5, 0.51234, -1.234),
                                                     (0.912345, 0.9, 1.234), (0.6, 0.6, 0.0)])
def test_miou_drop_is_in_points_rounded_to_three_decimals(reference, miou, points):
    assert miou_drop_points(reference, miou) == points


def test_gate_covers_every_variant():
    variants = {"fp32": {"miou_drop": 0.0}, "fp16": {"miou_drop": 1.5}, "int8": {"miou_drop": 0.5}}
    assert gate_verdict(variants, 1.0) == {"passed": False, "over_budget": {"fp16": 1.5}}
    variants["int8"]["miou_drop"] = 2.25
    assert gate_verdict(variants, 1.0) == {"passed": False, "over_budget": {"fp16": 1.5, "int8": 2.25}}
    assert gate_verdict(variants, 2.25) == {"passed": True, "over_budget": {}}  # the budget itself fits
    assert gate_verdict({"fp32": {"miou_drop": 0.0}, "int8": {"miou_drop": -0.3}}, 0.0)["passed"] is True


def test_gate_never_passes_what_was_not_measured():
    verdict = gate_verdict({"fp32": {"miou_drop": 0.0}, "fp16": {"miou_drop": math.nan}}, 1.0)
    assert verdict["passed"] is False and list(verdict["over_budget"]) == ["fp16"]
    with pytest.raises(ValueError, match="budget"):
        gate_verdict({"fp32": {"miou_drop": 0.0}}, math.nan)
    with pytest.raises(EdgesegError, match="finite"):
        CalibrationOptions(max_miou_drop=math.nan)


@pytest.mark.parametrize("fp16_threshold, passed", [(100.0, False), (127.0, True)])
def test_calibration_gates_fp16_in_points(tmp_path, monkeypatch, fp16_threshold, passed):
    """An FP16 variant (here a threshold graph standing in for the converter's output) is scored, its drop
    recorded in points and gated like INT8."""
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    spec, images = make_threshold_data(tmp_path / "data")

    def fake_fp16(fp32_path, out_path):
        threshold_onnx(Path(out_path), fp16_threshold)
        return {"nodes": 4}

    monkeypatch.setattr(calibration_pipeline, "convert_fp16", fake_fp16)
    summary = calibrate_bundle(bundle, CalibrationOptions(int8=False, eval_data=spec, max_miou_drop=1.0))
    cm = ConfusionMatrix(len(CLASSES))
    for image in images:
        cm.update(reference_labels(image, fp16_threshold), reference_labels(image, 127.0))
    drop = round(100 * (1.0 - cm.compute()["miou"]), 3)
    assert drop == 0.0 if passed else drop > 5  # none, or several points
    manifest = open_bundle(bundle).manifest
    variants = manifest.report("variants")
    assert variants["fp32"]["miou"] == 1.0 and variants["fp16"]["miou_drop"] == drop
    expected = {"passed": passed, "over_budget": {} if passed else {"fp16": drop}}
    assert {k: manifest.report("gate")[k] for k in expected} == expected and summary["gate"]["passed"] is passed


# -- confusion counts -------------------------------------------------------------------------------------------

def test_confusion_matrix_counts_uint8_labels_of_19_classes_without_overflow():
    target = np.array([[18, 18, 17], [0, 255, 13]], np.uint8)
    pred = np.array([[18, 17, 17], [18, 18, 13]], np.uint8)
    cm = ConfusionMatrix(19)
    cm.update(pred, target)
    expected = np.zeros((19, 19), np.int64)
    for t, p in ((18, 18), (18, 17), (17, 17), (0, 18), (13, 13)):
        expected[t, p] += 1
    np.testing.assert_array_equal(cm.matrix, expected)


# -- every TensorRT lint code on a graph that triggers exactly it --------------------------------------------

F, U8 = TensorProto.FLOAT, TensorProto.UINT8


def _vi(name, elem=F, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape) if shape is not None else None)


def _model(nodes, inputs, outputs, inits=(), value_info=(), opsets=(("", 18),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _resize(**attrs):
    sc = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")
    return _model([helper.make_node("Resize", ["x", "", "sc"], ["y"], **attrs)], [_vi("x")], [_vi("y", shape=None)],
                  [sc])


LINT_CASES = {
    "clean": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")]), []),
    "opset": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")], opsets=(("", 8),)),
              [("error", "opset")]),
    "custom-op": (lambda: _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], [_vi("x")],
                                 [_vi("y")], opsets=(("", 18), ("com.microsoft", 1))), [("error", "custom-op")]),
    "unsupported-op": (lambda: _model([helper.make_node("Det", ["x"], ["y"])], [_vi("x", shape=(2, 2))],
                                      [_vi("y", shape=())]), [("error", "unsupported-op")]),
    "resize": (lambda: _resize(mode="linear", coordinate_transformation_mode="half_pixel"), [("info", "resize")]),
    "resize-mode": (lambda: _resize(mode="cubic"), [("info", "resize"), ("error", "resize-mode")]),
    "resize-coordinates": (lambda: _resize(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
                           [("info", "resize"), ("error", "resize-coordinates")]),
    "resize-coordinates-warning": (
        lambda: _resize(mode="linear", coordinate_transformation_mode="tf_half_pixel_for_nn"),
        [("info", "resize"), ("warning", "resize-coordinates")]),
    "resize-nearest": (lambda: _resize(mode="nearest", nearest_mode="round_half_even"),
                       [("info", "resize"), ("error", "resize-nearest")]),
    "resize-antialias": (lambda: _resize(mode="linear", antialias=1),
                         [("info", "resize"), ("error", "resize-antialias")]),
    "pool-dilation": (lambda: _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])],
                                     [_vi("x")], [_vi("y", shape=None)]), [("error", "pool-dilation")]),
    "reduce-axes": (lambda: _model([helper.make_node("ReduceMean", ["x", "axes"], ["y"])],
                                   [_vi("x"), _vi("axes", TensorProto.INT64, (1,))], [_vi("y", shape=None)]),
                    [("error", "reduce-axes")]),
    "computed-pad": (lambda: _model([helper.make_node("Pad", ["x", "pads"], ["y"])],
                                    [_vi("x"), _vi("pads", TensorProto.INT64, (8,))], [_vi("y", shape=None)]),
                     [("error", "computed-pad")]),
    "shape-subgraph": (lambda: _model([helper.make_node("Shape", ["x"], ["s"]),
                                       helper.make_node("Reshape", ["x", "s"], ["y"])], [_vi("x")], [_vi("y")]),
                       [("warning", "shape-op"), ("error", "shape-subgraph")]),
    "shape-op": (lambda: _model([helper.make_node("Shape", ["x"], ["y"])], [_vi("x")],
                                [_vi("y", TensorProto.INT64, (4,))]), [("warning", "shape-op")]),
    "uint8-internal": (lambda: _model([helper.make_node("Cast", ["x"], ["u"], to=U8),
                                       helper.make_node("Cast", ["u"], ["y"], to=F)], [_vi("x")], [_vi("y")]),
                       [("error", "uint8-internal")]),
    "uint8-internal-input": (lambda: _model([helper.make_node("Identity", ["x"], ["u"]),
                                             helper.make_node("Cast", ["u"], ["y"], to=F)], [_vi("x", U8)], [_vi("y")],
                                            value_info=[_vi("u", U8)]), [("error", "uint8-internal")]),
    "argmax-to-uint8": (lambda: _model([helper.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=0),
                                        helper.make_node("Cast", ["a"], ["y"], to=U8)], [_vi("x")],
                                       [_vi("y", U8, (1, 8, 8))]), [("error", "argmax-to-uint8")]),
    "bool-to-uint8": (lambda: _model([helper.make_node("Greater", ["x", "x"], ["b"]),
                                      helper.make_node("Cast", ["b"], ["y"], to=U8)], [_vi("x")], [_vi("y", U8)]),
                      [("error", "bool-to-uint8")]),
    "opset-newer-than-jetpack": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")],
                                                opsets=(("", 22),)), [("warning", "opset")]),
    "qdq-zero-point": (lambda: _model([helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["y"])], [_vi("x")],
                                      [_vi("y", TensorProto.INT8)],
                                      [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
                                       numpy_helper.from_array(np.array(3, np.int8), "zp")]),
                       [("error", "qdq-zero-point")]),
}


@pytest.mark.parametrize("case", list(LINT_CASES))
def test_each_lint_code_on_a_graph_made_to_trigger_it(case):
    build, expected = LINT_CASES[case]
    report = lint_model(build(), case)
    assert sorted((f.severity, f.code) for f in report.findings) == sorted(expected)


def test_every_lint_code_has_a_case():
    source = (Path(__file__).resolve().parents[1] / "export" / "lint.py").read_text()
    emitted = set(re.findall(r'Finding\("(error|warning|info)", "([a-z0-9-]+)"', source))
    covered = {finding for _, expected in LINT_CASES.values() for finding in expected}
    assert len(emitted) == 19 and emitted == covered


# -- Q/DQ: the exact weight axis per op type ----------------------------------------------------------------------

def _qdq_probe_model(path: Path) -> Path:
    """uint8 image → MatMul → Gemm (transB) → Gemm → Conv → ConvTranspose → Conv → Conv (the logits head, kept
    out of INT8): every quantized op type, with weight dimensions that differ so a wrong axis shows in the scale
    count too."""
    rng = np.random.default_rng(0)
    weights = {"wm": (3, 4), "wg": (7, 4), "wg2": (7, 5), "wc": (16, 5, 1, 1), "wt": (16, 2, 2, 2),
               "wc2": (24, 2, 1, 1), "wh": (2, 24, 1, 1)}
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in weights.items()]
    inits += [numpy_helper.from_array(np.array(s, np.int64), n) for n, s in (("flat", [64, 4]), ("nhwc", [1, 8, 8, 5]))]
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=F),
             helper.make_node("MatMul", ["f", "wm"], ["m"], name="matmul"),
             helper.make_node("Reshape", ["m", "flat"], ["m2"]),
             helper.make_node("Gemm", ["m2", "wg"], ["g"], name="gemm_tb", transB=1),
             helper.make_node("Gemm", ["g", "wg2"], ["g2"], name="gemm"),
             helper.make_node("Reshape", ["g2", "nhwc"], ["g3"]),
             helper.make_node("Transpose", ["g3"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["x", "wc"], ["c"], name="conv"),
             helper.make_node("ConvTranspose", ["c", "wt"], ["t"], name="deconv", strides=[2, 2]),
             helper.make_node("Conv", ["t", "wc2"], ["c2"], name="last_conv"),
             helper.make_node("Conv", ["c2", "wh"], ["logits"], name="head"),
             helper.make_node("ArgMax", ["logits"], ["labels"], name="argmax", axis=1, keepdims=0)]
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def weight_axes(model) -> dict[str, tuple[int, int]]:
    """``{consumer node name: (axis, number of scales)}`` of every per-channel weight DequantizeLinear, each of
    which must read an int8 initializer (weights stored as int8, not float32 behind a QuantizeLinear)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consumers = {i: n for n in model.graph.node for i in n.input}
    axes = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and inits[n.input[1]].size > 1:
            assert n.input[0] in inits and inits[n.input[0]].dtype == np.int8, n.name
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)  # ONNX's default axis is 1
            axes[consumers[n.output[0]].name] = (axis, int(inits[n.input[1]].size))
    return axes


def test_qdq_weight_axis_per_op_type(tmp_path):
    from edgeseg.calibration.qdq import quantize_qdq
    from edgeseg.calibration.readers import CalibrationSet

    rng = np.random.default_rng(1)
    calib = CalibrationSet([rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)], "random")
    fp32 = _qdq_probe_model(tmp_path / "probe.onnx")
    quantize_qdq(fp32, tmp_path / "int8.onnx", calib, ranges_cache=tmp_path / "ranges.json")
    axes = weight_axes(onnx.load(str(tmp_path / "int8.onnx")))
    # Conv: output channels (axis 0); ConvTranspose: its weight is [in, out, kH, kW], output channels are axis 1;
    # Gemm: the output features, axis 0 of a transposed B, 1 otherwise; MatMul: B's columns (axis 1). The logits
    # head has none (it stays out of INT8).
    assert axes == {"conv": (0, 16), "deconv": (1, 2), "last_conv": (0, 24), "gemm_tb": (0, 7), "gemm": (1, 5),
                    "matmul": (1, 4)}
