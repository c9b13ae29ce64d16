"""Structural checks of a TensorRT-target Q/DQ model, shared by tests/test_qdq.py (a hand-built probe graph)
and tests/test_calibration.py (a trained LEDNet bundle). Each returns what it found wrong (empty = right)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
KEEP_FP32 = {"ReduceMean", "GlobalAveragePool", "Softmax", "ArgMax", "Cast"}  # the FP16 variant's FP32 ops


def _maps(model):
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return producers, consumers, inits


def dq_inputs(model, node) -> list[int]:
    """Indices of ``node``'s inputs that come from a DequantizeLinear."""
    producers, _, _ = _maps(model)
    return [k for k, i in enumerate(node.input) if i in producers and producers[i].op_type == "DequantizeLinear"]


def output_qdq(model) -> list[str]:
    """Activation Q/DQ pairs that something other than a weighted layer's input or an Add reads: a Q/DQ on a
    node's output (onnxruntime's QDQ quantizer puts one after every quantized node)."""
    producers, consumers, inits = _maps(model)
    wrong = []
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
            for c in consumers.get(n.output[0], []):
                if c.op_type not in (*WEIGHTED, "Add"):
                    wrong.append(f"{n.name} -> {c.op_type} {c.name}")
        if n.op_type == "QuantizeLinear" and any(c.op_type != "DequantizeLinear" for c in consumers[n.output[0]]):
            wrong.append(f"{n.name} feeds a non-DequantizeLinear")
    return wrong


def after_heads(model) -> tuple[list, list]:
    """(logits heads, every node after them): the heads are the weighted layers with no weighted layer after."""
    producers, consumers, _ = _maps(model)
    nodes = list(model.graph.node)
    weighted_after: dict[str, bool] = {}
    for n in reversed(nodes):
        weighted_after[n.name] = any(c.op_type in WEIGHTED or weighted_after.get(c.name, False)
                                     for o in n.output for c in consumers.get(o, []))
    heads = [n for n in nodes if n.op_type in WEIGHTED and not weighted_after[n.name]]
    seen, after = {h.name for h in heads}, []
    for n in nodes:
        if n.name not in seen and any(i in producers and producers[i].name in seen for i in n.input):
            seen.add(n.name)
            after.append(n)
    return heads, after


def int8_in_the_head(model) -> list[str]:
    """The logits heads and the nodes after them that are Q/DQ or read a dequantized tensor."""
    heads, after = after_heads(model)
    wrong = [f"{n.op_type} {n.name}" for n in after if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    return wrong + [f"{n.op_type} {n.name} reads int8" for n in heads + after if dq_inputs(model, n)]


def float32_ops(model) -> set[str]:
    """Op types with a float32 input or output (Casts and Q/DQ aside), from ONNX shape inference."""
    typed = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.graph.value_info, *typed.graph.input,
                                                              *typed.graph.output)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    found = set()
    for n in model.graph.node:
        if n.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear"):
            continue
        float_inputs = n.input[:1] if n.op_type == "Resize" else n.input  # Resize's scales are float32 by spec
        if any(types.get(t) == TensorProto.FLOAT for t in (*float_inputs, *n.output) if t):
            found.add(n.op_type)
    return found


def scale_types(model) -> set[int]:
    """Element types of every Q/DQ scale."""
    inits = {i.name: i for i in model.graph.initializer}
    return {inits[n.input[1]].data_type for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def dequantized_weights(model) -> dict[str, np.ndarray]:
    """``{weight DequantizeLinear output: its float value}`` for every int8-initializer weight."""
    _, _, inits = _maps(model)
    out = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            q, scale = inits[n.input[0]].astype(np.float32), inits[n.input[1]].astype(np.float32)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
            out[n.output[0]] = q * scale
    return out
