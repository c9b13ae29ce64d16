"""The FP16 variant: float16 weights and compute, I/O types unchanged (uint8 in, uint8 labels out), with the
numerically sensitive ops kept in float32 (global means over a whole feature map, softmax, argmax).

The same conversion (:func:`to_fp16`) makes the float layers of the TensorRT INT8 model FP16, so the two
variants keep exactly the same ops in float32."""

from __future__ import annotations

from pathlib import Path

from edgeseg.fileio import atomic_path
from edgeseg.onnxgraph import topological_sort

KEEP_FP32 = ["ReduceMean", "GlobalAveragePool", "Softmax", "ArgMax", "Cast"]


def to_fp16(model, keep_fp32: list[str] | None = None):
    """A float16 copy of ``model`` (a ``ModelProto``): every float tensor becomes float16 except around the op
    types in ``keep_fp32`` (default :data:`KEEP_FP32`), which run in float32 behind Cast nodes; graph inputs and
    outputs keep their types. Node and tensor names of the converted layers are kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(keep_fp32 or KEEP_FP32))
    topological_sort(fp16)  # the converter appends its Cast nodes at the end
    return fp16


def convert_fp16(fp32_path: str | Path, out_path: str | Path, keep_fp32: list[str] | None = None) -> dict:
    """Write the FP16 variant of ``fp32_path`` to ``out_path`` (atomically); returns what was kept in float32."""
    import onnx

    blocked = list(keep_fp32 or KEEP_FP32)
    fp16 = to_fp16(onnx.load(str(fp32_path)), blocked)
    onnx.checker.check_model(fp16)
    with atomic_path(out_path) as tmp:
        onnx.save(fp16, str(tmp))
    return {"kept_fp32_ops": blocked, "nodes": len(fp16.graph.node)}
