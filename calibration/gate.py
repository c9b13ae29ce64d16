"""The accuracy gate: score each precision variant with ONNX Runtime on an eval set, and when INT8 loses more
than the budget, leave the most sensitive layers in float, greedily, until it fits."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from edgeseg.data.base import SegmentationSource
from edgeseg.metrics import scores_from_confusion
from edgeseg.onnxgraph import with_outputs
from edgeseg.runtime.evaluate import evaluate_runner
from edgeseg.runtime.onnxruntime_runner import OnnxRuntimeRunner

log = logging.getLogger(__name__)


def score_onnx(path: str | Path, source: SegmentationSource, num_classes: int, *, max_images: int | None = None,
               threads: int | None = None, reference: list[np.ndarray] | None = None, mode: str = "stretch",
               bgr: bool = False, progress: bool = False):
    """mIoU (and friends) of an ONNX file, its images fitted by the bundle's resize ``mode``; with ``reference``
    predictions, the label agreement with them. Returns ``(scores, predictions)``. ``progress``: announce what is
    scored and show a bar."""
    predictions: list[np.ndarray] = []
    latencies: list[float] = []
    with OnnxRuntimeRunner(path, threads=threads) as runner:
        cm = evaluate_runner(runner, source, num_classes=num_classes, max_images=max_images,
                             on_prediction=lambda _, p: predictions.append(p), latencies=latencies, mode=mode, bgr=bgr,
                             progress=progress)
    scores = scores_from_confusion(cm.matrix)
    scores["bytes"] = Path(path).stat().st_size
    scores["median_latency_ms"] = float(np.median(latencies))
    if reference is not None:
        same = sum(int((p == r).sum()) for p, r in zip(predictions, reference))
        scores["label_agreement"] = same / sum(r.size for r in reference)
    return scores, predictions


def gate_verdict(variants: dict, budget: float) -> dict:
    """The accuracy gate over every scored variant (fp32, fp16, int8 alike): ``{"passed", "over_budget"}``,
    where ``over_budget`` maps each variant whose ``miou_drop`` (mIoU points) exceeds ``budget`` (points) to
    its drop. A drop that is not a number (nothing scored) is over any budget: an unmeasured variant never
    passes."""
    if not isinstance(budget, (int, float)) or math.isnan(budget):
        raise ValueError(f"the mIoU budget must be a number of points, got {budget!r}")
    over = {name: v["miou_drop"] for name, v in variants.items() if not v["miou_drop"] <= budget}
    return {"passed": not over, "over_budget": over}


def _conv_outputs(model) -> dict[str, str]:
    return {n.output[0]: n.name for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}


def _upstream_convs(model, conv_outputs: dict[str, str]) -> dict[str, set[str]]:
    """For each conv output, the conv outputs feeding it (through any non-conv ops)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    result = {}
    for out in conv_outputs:
        node = producers[out]
        seen, stack, found = set(), [i for i in node.input[:1]], set()
        while stack:
            t = stack.pop()
            if t in seen or t not in producers:
                continue
            seen.add(t)
            if t in conv_outputs:
                found.add(t)
                continue
            stack.extend(producers[t].input)
        result[out] = found
    return result


def _with_typed_outputs(model, names):
    """``model`` also outputting the tensors ``names`` with their own element types (float16 in the TensorRT
    INT8 model, float32 in the float one)."""
    import onnx

    typed = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.graph.value_info, *typed.graph.output)}
    copy = with_outputs(model, [n for n in names if types.get(n, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT])
    existing = {o.name for o in copy.graph.output}
    copy.graph.output.extend(onnx.helper.make_tensor_value_info(n, types[n], None) for n in names if n not in existing)
    return copy


def layer_sensitivity(fp32_path: str | Path, int8_path: str | Path, batches: list[dict[str, np.ndarray]]) -> list[dict]:
    """Rank conv layers by the error the INT8 model adds *at* that layer: relative MSE of each conv output
    against float32, minus the worst error already present in its inputs. One pass of each model."""
    import onnx
    import onnxruntime as ort

    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    convs = _conv_outputs(fp32)
    names = [n for n in convs if n in {o for node in int8.graph.node for o in node.output}]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no advice about float16 constants it cannot fold on the CPU
    sessions = [ort.InferenceSession(_with_typed_outputs(m, names).SerializeToString(), options,
                                     providers=["CPUExecutionProvider"]) for m in (fp32, int8)]
    sq_err = dict.fromkeys(names, 0.0)
    power = dict.fromkeys(names, 0.0)
    for batch in batches:
        ref, got = ([{o.name: np.asarray(v, np.float32) for o, v in zip(s.get_outputs(), s.run(None, batch))}
                     for s in sessions])
        for n in names:
            sq_err[n] += float(np.mean((ref[n] - got[n]) ** 2))
            power[n] += float(np.mean(ref[n] ** 2))
    error = {n: sq_err[n] / max(power[n], 1e-12) for n in names}
    upstream = _upstream_convs(fp32, convs)
    ranked = [{"node": convs[n], "tensor": n, "relative_mse": error[n],
               "added": error[n] - max((error[u] for u in upstream[n] if u in error), default=0.0)} for n in names]
    return sorted(ranked, key=lambda r: -r["added"])
