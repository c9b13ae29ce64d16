"""The FP16 variant: float16 weights and compute, I/O types unchanged (uint8 in, uint8 labels out), with the
numerically sensitive ops kept in float32 (global means over a whole feature map, softmax, argmax)."""

from __future__ import annotations

from pathlib import Path

from edgeseg.fileio import atomic_path
from edgeseg.onnxgraph import topological_sort

KEEP_FP32 = ["ReduceMean", "GlobalAveragePool", "Softmax", "ArgMax", "Cast"]


def convert_fp16(fp32_path: str | Path, out_path: str | Path, keep_fp32: list[str] | None = None) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    blocked = list(keep_fp32 or KEEP_FP32)
    fp16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    topological_sort(fp16)  # the converter appends its Cast nodes at the end
    onnx.checker.check_model(fp16)
    with atomic_path(out_path) as tmp:
        onnx.save(fp16, str(tmp))
    return {"kept_fp32_ops": blocked, "nodes": len(fp16.graph.node)}
