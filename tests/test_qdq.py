"""The TensorRT-target Q/DQ model on a hand-built probe graph (no torch, a second per test): residual Adds
quantize their residual input only, no Q/DQ on outputs, FP16 everywhere the FP16 variant is, the logits heads
and what follows them out of INT8, int8 weights that dequantize to the float weights, and ONNX Runtime runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from qdq_checks import dequantized_weights, dq_inputs, float32_ops, int8_in_the_head, output_qdq, scale_types

from edgeseg.calibration.qdq import quantize_qdq
from edgeseg.calibration.readers import CalibrationSet

F = TensorProto.FLOAT


def _residual_probe(path: Path) -> Path:
    """uint8 image → conv_a → relu ─┬─ conv_b ──────────── add_identity (conv branch + identity shortcut)
                                    └──────────────────────┘
    → relu → conv_s ───────────────── add_projection (shortcut conv + a deeper conv branch)
           → conv_m1 → relu → conv_m2 ┘
    ─┬─ conv_r ─ add_block (an Add output as residual, input 0, + one conv branch)
     └──────────┘
    → sigmoid·x sum (add_plain: no conv branch) → GlobalAveragePool gate → conv_h, conv_h2 (two logits heads)
    → add_heads → Resize ×2 → ArgMax → Cast float → Cast uint8."""
    rng = np.random.default_rng(0)
    shapes = {"wa": (16, 3, 3, 3), "wb": (16, 16, 3, 3), "ws": (24, 16, 1, 1), "wm1": (24, 16, 3, 3),
              "wm2": (24, 24, 3, 3), "wr": (24, 24, 3, 3), "wh": (3, 24, 1, 1), "wh2": (3, 24, 1, 1)}
    inits = [numpy_helper.from_array((rng.normal(size=s) * 0.1).astype(np.float32), n) for n, s in shapes.items()]
    inits += [numpy_helper.from_array(rng.normal(size=s[0]).astype(np.float32), f"b{n}") for n, s in shapes.items()]
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up"))
    inits.append(numpy_helper.from_array(np.array(1 / 64, np.float32), "norm"))

    def conv(name, x, w, out, pads=1):
        return helper.make_node("Conv", [x, w, f"b{w}"], [out], name=name, pads=[pads] * 4)

    nodes = [helper.make_node("Cast", ["image"], ["f"], name="cast_in", to=F),
             helper.make_node("Mul", ["f", "norm"], ["fn"], name="normalize"),
             helper.make_node("Transpose", ["fn"], ["x"], name="nchw", perm=[0, 3, 1, 2]),
             conv("conv_a", "x", "wa", "a"), helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
             conv("conv_b", "ra", "wb", "b"),
             helper.make_node("Add", ["b", "ra"], ["s1"], name="add_identity"),
             helper.make_node("Relu", ["s1"], ["r1"], name="relu_1"),
             conv("conv_s", "r1", "ws", "sc", pads=0),
             conv("conv_m1", "r1", "wm1", "m1"), helper.make_node("Relu", ["m1"], ["rm1"], name="relu_m1"),
             conv("conv_m2", "rm1", "wm2", "m2"),
             helper.make_node("Add", ["sc", "m2"], ["s2"], name="add_projection"),
             conv("conv_r", "s2", "wr", "rr"),
             helper.make_node("Add", ["s2", "rr"], ["s5"], name="add_block"),
             helper.make_node("Sigmoid", ["s5"], ["g"], name="sigmoid"),
             helper.make_node("Add", ["g", "s5"], ["s3"], name="add_plain"),
             helper.make_node("GlobalAveragePool", ["s3"], ["gap"], name="gap"),
             helper.make_node("Mul", ["s3", "gap"], ["s4"], name="gate"),
             conv("conv_h", "s4", "wh", "h1", pads=0), conv("conv_h2", "s4", "wh2", "h2", pads=0),
             helper.make_node("Add", ["h1", "h2"], ["logits"], name="add_heads"),
             helper.make_node("Resize", ["logits", "", "up"], ["big"], name="resize", mode="linear"),
             helper.make_node("ArgMax", ["big"], ["idx"], name="argmax", axis=1, keepdims=0),
             helper.make_node("Cast", ["idx"], ["fidx"], name="cast_f", to=F),
             helper.make_node("Cast", ["fidx"], ["labels"], name="cast_u8", to=TensorProto.UINT8)]
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qdq")
    rng = np.random.default_rng(1)
    calib = CalibrationSet([rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)], "random")
    fp32 = _residual_probe(tmp / "probe.onnx")
    info = quantize_qdq(fp32, tmp / "int8.onnx", calib, ranges_cache=tmp / "ranges.json")
    return onnx.load(str(fp32)), onnx.load(str(tmp / "int8.onnx")), info, calib, tmp


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def test_residual_adds_quantize_the_residual_input_only(probe):
    _, int8, info, _, _ = probe
    # the identity shortcut (input 1) and the projection shortcut conv (input 0, the shallower branch) are the
    # residuals; the conv branch TensorRT fuses the Add into (input 0, then input 1) stays unquantized
    assert dq_inputs(int8, _node(int8, "add_identity")) == [1]
    assert dq_inputs(int8, _node(int8, "add_projection")) == [0]
    assert dq_inputs(int8, _node(int8, "add_block")) == [0]  # the Add output, not conv_r's branch
    assert dq_inputs(int8, _node(int8, "add_plain")) == []  # no conv branch: no fusion to enable
    assert info["residual_adds"] == 3


def test_no_qdq_on_node_outputs(probe):
    _, int8, _, _, _ = probe
    assert output_qdq(int8) == []
    weighted = [n for n in int8.graph.node if n.op_type == "Conv" and n.name not in ("conv_h", "conv_h2")]
    assert all(dq_inputs(int8, n) == [0, 1] for n in weighted)  # activation and weight of every body conv


def test_logits_heads_and_everything_after_stay_out_of_int8(probe):
    _, int8, info, _, _ = probe
    assert sorted(info["logits_heads"]) == ["conv_h", "conv_h2"]
    assert int8_in_the_head(int8) == []
    assert dq_inputs(int8, _node(int8, "add_heads")) == []  # both inputs are conv branches, but logits


def test_fp16_everywhere_the_fp16_variant_is(probe):
    from edgeseg.calibration.fp16 import to_fp16

    fp32, int8, _, _, _ = probe
    assert float32_ops(int8) == float32_ops(to_fp16(fp32)) == {"GlobalAveragePool", "ArgMax"}
    assert scale_types(int8) == {TensorProto.FLOAT16}
    assert next(o.version for o in int8.opset_import if o.domain in ("", "ai.onnx")) >= 19


def test_weights_are_int8_initializers_that_dequantize_to_the_float_weights(probe):
    fp32, int8, _, _, _ = probe
    floats = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    dequantized = dequantized_weights(int8)
    convs = {n.name: n for n in int8.graph.node if n.op_type == "Conv"}
    checked = 0
    for name, node in convs.items():
        if node.input[1] in dequantized:
            original = floats[_node(fp32, name).input[1]]
            step = np.abs(original).reshape(len(original), -1).max(axis=1) / 127
            error = np.abs(dequantized[node.input[1]] - original).reshape(len(original), -1).max(axis=1)
            assert np.all(error <= step * 0.5 * (1 + 2e-3) + 1e-7), name
            checked += 1
    assert checked == 6
    assert not any(i.data_type == TensorProto.FLOAT for i in int8.graph.initializer if i.name.startswith("w"))


def test_onnxruntime_cpu_runs_the_fp16_qdq_model_close_to_float(probe):
    fp32, int8, _, calib, tmp = probe
    feed = next(calib.feeds(1))
    runs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
            for m in (fp32, int8)]
    assert runs[1].dtype == np.uint8 and runs[1].shape == runs[0].shape
    assert (runs[0] == runs[1]).mean() > 0.7


@pytest.mark.parametrize("dims, group, worth", [
    ((16, 3, 3, 3), 1, True),  # a first conv: 16 out, a multiple of 8
    ((29, 3, 3, 3), 1, False),  # LEDNet's first conv: neither side a multiple of 8
    ((1, 1, 5, 5), 1, False),  # LEDNet's 1-channel attention convs
    ((64, 64, 3, 1), 1, True),  # factorized, wide
    ((8, 8, 3, 1), 1, False),  # factorized and narrow
    ((32, 1, 3, 3), 32, True),  # depthwise 3×3
    ((12, 1, 3, 3), 12, False),  # depthwise, 12 channels
])
def test_narrow_convolutions_stay_fp16(dims, group, worth):
    from edgeseg.calibration.qdq_placement import conv_worth_int8

    node = helper.make_node("Conv", ["x", "w"], ["y"], group=group)
    assert conv_worth_int8(node, list(dims)) is worth
