"""Write the TensorRT-target INT8 model: the float graph in FP16 with Q/DQ pairs where :mod:`qdq_placement` says.

TensorRT builds it as a strongly typed network, where the ONNX tensor types decide each layer's precision:

* every float layer is FP16, converted exactly as the FP16 variant (:func:`edgeseg.calibration.fp16.to_fp16`,
  the same ops kept in FP32), so no layer is left in FP32 by accident;
* activations: ``QuantizeLinear(x fp16, scale fp16, zero point int8 0) → DequantizeLinear → fp16``, one pair per
  quantized tensor shared by its quantized consumers; scales are ``amax / 127`` from the calibration ranges;
* weights: int8 initializers + ``DequantizeLinear`` with fp16 per-output-channel scales (a quarter of the
  float32 bytes), symmetric, clipped to [-127, 127];
* float16 Q/DQ scales need opset 19: the model's default-domain opset is raised to at least 19 (no op used by
  the exported graphs changes meaning between 18 and 19).

The accuracy gate scores this very file with ONNX Runtime's CPU provider. ONNX Runtime runs the Q/DQ nodes on
float16 directly; float16 ops that its CPU provider has no float16 kernel for (on x86: Conv, Resize, most
pointwise ops) it runs in float32 between Casts that it inserts itself, so every tensor is still rounded to
float16 between layers as in TensorRT, and only the accumulation inside a layer is wider.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeseg.calibration.fp16 import to_fp16
from edgeseg.calibration.qdq_placement import QdqPlan
from edgeseg.fileio import atomic_path
from edgeseg.onnxgraph import topological_sort

log = logging.getLogger(__name__)
QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear with float16 scales
# smallest normal float16: a smaller scale would be subnormal or round to 0 (a tensor that is all zeros)
_MIN_SCALE = float(np.finfo(np.float16).tiny)


def fp16_scale(amax: np.ndarray | float) -> np.ndarray:
    """Symmetric int8 scale(s) ``amax / 127`` as float16, never below the smallest normal float16."""
    return np.maximum(np.asarray(amax, np.float32) / 127.0, _MIN_SCALE).astype(np.float16)


def quantize_weight(weight: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(int8 weight, float16 scale)``: per channel along ``axis`` (per tensor when None), rounded with the
    float16 scale itself so ``DequantizeLinear`` gives back exactly what TensorRT will compute with."""
    w = np.asarray(weight, np.float32)
    if axis is None:
        scale = fp16_scale(np.abs(w).max() if w.size else 0.0)
        broadcast = scale.astype(np.float32)
    else:
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = fp16_scale(np.abs(w).max(axis=others) if w.size else np.zeros(w.shape[axis]))
        shape = [1] * w.ndim
        shape[axis] = -1
        broadcast = scale.astype(np.float32).reshape(shape)
    q = np.clip(np.rint(w / broadcast), -127, 127).astype(np.int8)
    return q, scale


class _Writer:
    def __init__(self, model) -> None:
        self.model = model
        self.names = {i.name for i in model.graph.initializer} | {o for n in model.graph.node for o in n.output} \
            | {i.name for i in model.graph.input}
        self.new_nodes: list = []
        self.new_inits: list = []

    def unique(self, name: str) -> str:
        while name in self.names:
            name += "_"
        self.names.add(name)
        return name

    def init(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.unique(name)
        self.new_inits.append(numpy_helper.from_array(array, name))
        return name

    def qdq(self, tensor: str, amax: float) -> str:
        from onnx import helper

        scale = self.init(f"{tensor}_scale", fp16_scale(amax))
        zero = self.init(f"{tensor}_zero_point", np.array(0, np.int8))
        quantized, out = self.unique(f"{tensor}_quantized"), self.unique(f"{tensor}_dequantized")
        self.new_nodes += [helper.make_node("QuantizeLinear", [tensor, scale, zero], [quantized],
                                            name=self.unique(f"{tensor}_QuantizeLinear")),
                           helper.make_node("DequantizeLinear", [quantized, scale, zero], [out],
                                            name=self.unique(f"{tensor}_DequantizeLinear"))]
        return out

    def weight(self, tensor: str, weight: np.ndarray, axis: int | None) -> str:
        from onnx import helper

        q, scale = quantize_weight(weight, axis)
        qname = self.init(f"{tensor}_int8", q)
        sname = self.init(f"{tensor}_scale", scale)
        zero = self.init(f"{tensor}_zero_point", np.zeros(scale.shape, np.int8))
        out = self.unique(f"{tensor}_dequantized")
        attrs = {} if axis is None else {"axis": axis}
        self.new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zero], [out],
                                               name=self.unique(f"{tensor}_DequantizeLinear"), **attrs))
        return out


def write_tensorrt_qdq(fp32_model, plan: QdqPlan, amax: dict[str, float], out_path: str | Path) -> dict:
    """Convert ``fp32_model`` (nodes named as ``plan`` names them) to FP16, insert ``plan``'s Q/DQ pairs with
    scales from ``amax`` (``{float32 tensor name: max |value|}``), check and write it to ``out_path``
    atomically. Returns counts of what was quantized."""
    import onnx
    from onnx import numpy_helper

    weights32 = {i.name: numpy_helper.to_array(i) for i in fp32_model.graph.initializer}
    model = to_fp16(fp32_model)
    nodes = {n.name: n for n in model.graph.node}
    writer = _Writer(model)
    activation_out: dict[str, str] = {}
    weight_out: dict[tuple[str, int | None], str] = {}
    skipped = []
    for node_name, index, tensor32 in plan.activations:
        node = nodes[node_name]
        tensor = node.input[index]  # the converted graph's name (a Cast may sit in between)
        if tensor32 not in amax:
            skipped.append(tensor32)
            continue
        if tensor not in activation_out:
            activation_out[tensor] = writer.qdq(tensor, amax[tensor32])
        node.input[index] = activation_out[tensor]
    for node_name, index, tensor32, axis in plan.weights:
        key = (tensor32, axis)
        if key not in weight_out:
            weight_out[key] = writer.weight(tensor32, weights32[tensor32], axis)
        nodes[node_name].input[index] = weight_out[key]
    if skipped:
        log.warning("no calibration range for %d tensors (left in FP16), e.g. %s", len(skipped), skipped[0])
    model.graph.node.extend(writer.new_nodes)
    model.graph.initializer.extend(writer.new_inits)
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < QDQ_OPSET:
            opset.version = QDQ_OPSET
    topological_sort(model)
    onnx.checker.check_model(model)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
    return {"quantized_activations": len(activation_out), "int8_weights": len(weight_out),
            "residual_adds": len(plan.residual_adds), "logits_heads": plan.heads, "narrow_convs_fp16": plan.narrow,
            "unranged": len(skipped)}


__all__ = ["QDQ_OPSET", "fp16_scale", "quantize_weight", "write_tensorrt_qdq"]
