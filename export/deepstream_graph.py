"""The deploy graph nvinfer can feed, cut from the bundle's fp32 ONNX, and its check against the bundle's graph.

**Input.** nvinfer scales each frame to the network size, converts it to planar float and computes
``net-scale-factor * (pixel - offsets[c])`` per pixel, in RGB or BGR (``model-color-format``); one scale for
all channels cannot express ImageNet's per-channel std. The variant therefore takes what nvinfer hands over
with ``net-scale-factor=1``, no offsets and ``model-color-format=0``: float32 N×3×H×W RGB in 0-255. The
bundle's graph begins ``image`` (uint8 N×H×W×3) → Cast(float) → Transpose(NHWC→NCHW) → Sub(mean·255) →
Mul(1/(std·255)); the variant drops the Cast and the Transpose and feeds the new input to the normalisation
the bundle already has, so the per-channel mean and std stay exact and every later tensor keeps its name (and
value), which is what lets the bundle's INT8 calibration cache carry over (:mod:`edgeseg.export.deepstream_int8`).
A graph whose Cast feeds something else gets a Transpose back to NHWC instead: the values are the same.

**Output.** nvinfer's segmentation parser (``network-type=2``; ``SegmentPostprocessor::fillSegmentationOutput``
in DeepStream's ``nvdsinfer_context_impl_output_parsing.cpp``) reads the *first* output layer as a **float**
C×H×W map (``segmentation-output-order=0``, NCHW; 1 is NHWC) and, per pixel, picks the first class whose value
is the largest and strictly above ``segmentation-threshold``, else -1; the map itself is attached as
``class_probability_map``. A uint8 ``labels`` tensor would be read as floats, and raw logits would turn every
pixel whose largest logit is not above the threshold (which cannot be negative) into -1. So the variant's one
output is ``probs``: Softmax over the channel axis of the tensor the bundle's ArgMax reads, at that
resolution (the deploy size; the logits' own size for ``--argmax-at logits``). Every pixel has a class
probability of at least 1/C > 0, so with ``segmentation-threshold=0`` nvinfer's class map is the bundle's
ArgMax (first maximum on ties, as ONNX's ArgMax), and a threshold above 0 becomes a real confidence cut.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import INPUT_NAME, PROBS

log = logging.getLogger(__name__)

VARIANT_INPUT = "input"  # float32 N×3×H×W RGB 0-255, as nvinfer fills it with net-scale-factor=1
VARIANT_OUTPUT = PROBS  # float32 N×C×h×w class probabilities (segmentation-output-order=0)
NCHW_TO_NHWC = [0, 2, 3, 1]
NHWC_TO_NCHW = [0, 3, 1, 2]


@dataclass
class Variant:
    """The float-input graph (an onnx ModelProto) and what it was cut from: ``argmax_input``, the bundle
    tensor it turns into probabilities, ``argmax_output``, the bundle's ArgMax result it is checked against."""

    model: object
    argmax_input: str
    argmax_output: str
    removed_nodes: int

    def tensor_names(self) -> set[str]:
        """Every tensor the variant computes or takes (its input and every node output)."""
        graph = self.model.graph
        return {i.name for i in graph.input} | {o for n in graph.node for o in n.output if o}


def _attr(node, name: str, default=None):
    import onnx

    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else onnx.helper.get_attribute_value(found)


def _dims(value_info) -> list:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _consumers(graph, name: str) -> list:
    return [n for n in graph.node if name in n.input]


def _image_input(graph):
    """The bundle graph's image input, checked: uint8 N×H×W×3, the only input (RGB-D bundles are refused)."""
    import onnx

    if [i.name for i in graph.input] != [INPUT_NAME]:
        raise EdgesegError(f"the bundle's graph takes {', '.join(i.name for i in graph.input)}; nvinfer feeds one "
                           f"image input (RGB-D models, which also take depth, cannot run in nvinfer as they are)")
    image = graph.input[0]
    dims = _dims(image)
    if image.type.tensor_type.elem_type != onnx.TensorProto.UINT8 or len(dims) != 4 or dims[3] != 3:
        raise EdgesegError(f"the bundle's {INPUT_NAME} input is not uint8 N×H×W×3 ({dims}): not an edgeseg deploy "
                           f"graph; re-export the bundle")
    return image


def _argmax(graph):
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    if len(argmaxes) != 1 or _attr(argmaxes[0], "axis", 0) != 1:
        raise EdgesegError("the bundle's graph has no single ArgMax over the class axis: not an edgeseg deploy "
                           "graph; re-export the bundle")
    return argmaxes[0]


def _rename_input(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _feed_float_input(graph, image) -> None:
    """Replace ``image`` → Cast(float) [→ Transpose to NCHW] with the float NCHW input."""
    import onnx
    from onnx import TensorProto, helper

    casts = _consumers(graph, image.name)
    if len(casts) != 1 or casts[0].op_type != "Cast" or _attr(casts[0], "to") != TensorProto.FLOAT:
        raise EdgesegError("the bundle's graph does not begin with a Cast of the image to float: not an edgeseg "
                           "deploy graph; re-export the bundle")
    cast = casts[0]
    cast_out = cast.output[0]
    batch, h, w, _ = _dims(image)
    new_input = helper.make_tensor_value_info(VARIANT_INPUT, TensorProto.FLOAT, [batch or "batch", 3, h, w])
    followers = _consumers(graph, cast_out)
    to_nchw = [n for n in followers if n.op_type == "Transpose" and list(_attr(n, "perm", [])) == NHWC_TO_NCHW]
    graph.node.remove(cast)
    if followers and len(to_nchw) == len(followers) and cast_out not in {o.name for o in graph.output}:
        for transpose in to_nchw:  # the input already is what the transpose computed
            _rename_input(graph, transpose.output[0], VARIANT_INPUT)
            graph.node.remove(transpose)
    else:
        graph.node.insert(0, helper.make_node("Transpose", [VARIANT_INPUT], [cast_out], perm=NCHW_TO_NHWC,
                                              name="deepstream_input_to_nhwc"))
    graph.input.remove(image)
    graph.input.insert(0, new_input)
    onnx.checker.check_value_info(new_input, onnx.checker.DEFAULT_CONTEXT)


def _probs_output(graph, scores: str) -> None:
    """Make ``probs`` = Softmax(``scores``, axis 1) the graph's only output (an existing one is reused)."""
    from onnx import helper

    producers = {o: n for n in graph.node for o in n.output}
    existing = producers.get(VARIANT_OUTPUT)
    if existing is None:
        if VARIANT_OUTPUT in {i.name for i in graph.input} | {i.name for i in graph.initializer}:
            raise EdgesegError(f"the bundle's graph already has a tensor named {VARIANT_OUTPUT!r}")
        graph.node.append(helper.make_node("Softmax", [scores], [VARIANT_OUTPUT], axis=1, name="deepstream_probs"))
    elif existing.op_type != "Softmax" or list(existing.input) != [scores] or _attr(existing, "axis", -1) != 1:
        raise EdgesegError(f"the bundle's graph has a tensor {VARIANT_OUTPUT!r} that is not the softmax of what its "
                           f"ArgMax reads; re-export the bundle")
    del graph.output[:]
    graph.output.append(helper.make_empty_tensor_value_info(VARIANT_OUTPUT))


def _prune(graph) -> int:
    """Drop the nodes, initializers and value infos the outputs do not need; returns the nodes dropped."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    removed = len(graph.node) - len(keep)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    for field in (graph.initializer, graph.value_info):
        for item in [x for x in field if x.name not in needed]:
            field.remove(item)
    return removed


def build_variant(bundle_model) -> Variant:
    """The nvinfer variant of ``bundle_model`` (the bundle's fp32 deploy graph, an onnx ModelProto; not changed):
    float32 N×3×H×W RGB 0-255 ``input`` in, float32 N×C×h×w ``probs`` out (see the module docstring)."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(bundle_model)
    graph = model.graph
    image = _image_input(graph)
    argmax = _argmax(graph)
    taken = {i.name for i in graph.input} | {o for n in graph.node for o in n.output} | {
        i.name for i in graph.initializer}
    if VARIANT_INPUT in taken:
        raise EdgesegError(f"the bundle's graph already has a tensor named {VARIANT_INPUT!r}")
    _feed_float_input(graph, image)
    _probs_output(graph, argmax.input[0])
    removed = _prune(graph)
    del graph.value_info[:]  # stale shapes of the old input's path; inferred again below
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise EdgesegError(f"the DeepStream graph cut from the bundle is not valid ONNX: {exc}") from None
    out = model.graph.output[0]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.dim_param and out.type.tensor_type.shape.dim:  # name the output's dynamic batch as the input's
        out.type.tensor_type.shape.dim[0].dim_param = batch.dim_param
    if out.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(_dims(out)) != 4:
        raise EdgesegError(f"the variant's {VARIANT_OUTPUT} output is not float32 N×C×H×W ({_dims(out)})")
    return Variant(model, argmax.input[0], argmax.output[0], removed)


def variant_shapes(variant: Variant) -> tuple[list, list]:
    """The variant's input and output dimensions (a dynamic batch as its name)."""
    graph = variant.model.graph
    return _dims(graph.input[0]), _dims(graph.output[0])


def nvinfer_class_map(probs: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """What nvinfer's segmentation parser makes of ``probs`` (N×C×H×W): per pixel the first class with the
    largest value if that value is strictly above ``threshold``, else -1."""
    best = probs.argmax(axis=1)
    return np.where(probs.max(axis=1) > threshold, best, -1)


def sample_frames(count: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``count`` seeded uint8 H×W×3 frames: every other one noise, the rest blocks of colour (8×8 cells)."""
    rng = np.random.default_rng(seed)
    h, w = size
    frames = []
    for i in range(count):
        if i % 2 == 0:
            frames.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        else:
            cells = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
            frames.append(np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)[:h, :w])
    return np.stack(frames)


def batch_sizes(model) -> list[int]:
    """The batch sizes to check: the graph's static one, or 1 and 2 for a dynamic batch."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return [dim.dim_value] if dim.dim_value > 0 else [1, 2]


def _session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def compare_with_bundle(variant: Variant, bundle_model, frames: np.ndarray, threshold: float = 0.0) -> dict:
    """Run the variant (on the frames as nvinfer hands them: float NCHW RGB 0-255) and the bundle's own graph
    (on the uint8 frames) in ONNX Runtime, at every batch size the graph declares.

    Returns ``label_agreement``: the worst fraction of pixels where nvinfer's class map of the variant's
    ``probs`` equals the bundle's ArgMax (its labels before the uint8 cast and any nearest upsample), and
    ``max_abs_prob_diff`` against the softmax of the bundle's own scores."""
    from onnx import TensorProto, helper

    probe = type(bundle_model)()
    probe.CopyFrom(bundle_model)
    probe.graph.output.extend([helper.make_tensor_value_info(variant.argmax_output, TensorProto.INT64, None),
                               helper.make_tensor_value_info(variant.argmax_input, TensorProto.FLOAT, None)])
    reference, candidate = _session(probe), _session(variant.model)
    agreement, worst_diff, checks = 1.0, 0.0, []
    for b in batch_sizes(variant.model):
        for start in range(0, len(frames) - b + 1, b):
            batch = frames[start:start + b]
            labels, scores = reference.run([variant.argmax_output, variant.argmax_input], {INPUT_NAME: batch})
            (probs,) = candidate.run([VARIANT_OUTPUT],
                                     {VARIANT_INPUT: batch.transpose(0, 3, 1, 2).astype(np.float32)})
            if probs.shape[2:] != labels.shape[1:]:
                raise EdgesegError(f"the variant's probabilities are {probs.shape[2:]}, the bundle's ArgMax "
                                   f"{labels.shape[1:]}")
            share = float(np.mean(nvinfer_class_map(probs, threshold) == labels))
            diff = float(np.abs(probs - _softmax(scores)).max())
            checks.append({"batch": b, "frames": int(len(batch)), "label_agreement": share,
                           "max_abs_prob_diff": diff})
            agreement, worst_diff = min(agreement, share), max(worst_diff, diff)
    if not checks:
        raise EdgesegError(f"no verification frames: need at least {max(batch_sizes(variant.model))}")
    return {"label_agreement": agreement, "max_abs_prob_diff": worst_diff, "threshold": threshold,
            "batch_sizes": batch_sizes(variant.model), "frames": int(len(frames)), "checks": checks}


def require_agreement(result: dict, minimum: float) -> None:
    """Refuse a variant whose nvinfer class map agrees with the bundle's labels less than ``minimum``."""
    if not result["label_agreement"] >= minimum:
        raise EdgesegError(f"the DeepStream graph agrees with the bundle's graph on only "
                           f"{100 * result['label_agreement']:.3f}% of labels (minimum {100 * minimum:.1f}%); "
                           f"nothing was written (see --min-agreement)")
