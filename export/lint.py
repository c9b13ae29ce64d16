"""TensorRT lint for ONNX files: what the TensorRT 10.x / 11.x parser will reject or silently change.

Findings are ``error`` (TensorRT will not build it, or the result would be wrong), ``warning`` (works but
fragile or slow) and ``info`` (worth seeing, e.g. each Resize's modes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.trt_support import (
    POOL_OPS,
    REDUCE_OPS,
    RESIZE_COORDINATE_MODES,
    RESIZE_MODES,
    RESIZE_NEAREST_MODES,
    SUPPORTED_OPS,
)
from edgeseg.runtime.trt_features import OPSET_RANGES, onnx_opset_range

BOOL_PRODUCERS = {"Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal", "And", "Or", "Xor", "Not", "IsNaN",
                  "IsInf"}

SHAPE_CONSUMERS = {"Reshape", "Resize", "Pad", "Expand", "Tile", "Slice", "ConstantOfShape", "Range"}


@dataclass
class Finding:
    severity: str  # error | warning | info
    code: str
    node: str
    message: str


@dataclass
class LintReport:
    path: str
    opset: int
    node_count: int
    op_counts: dict
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        return {"path": self.path, "opset": self.opset, "node_count": self.node_count, "op_counts": self.op_counts,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings]}

    def table(self) -> str:
        from edgeseg.texttable import render_table

        table = render_table(("severity", "check", "node", "message"),
                             [(f.severity, f.code, f.node, f.message) for f in self.findings])
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.op_counts.items(), key=lambda x: -x[1]))
        summary = (f"{self.path}: opset {self.opset}, {self.node_count} nodes ({ops}); "
                   f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return f"{table}\n\n{summary}" if self.findings else summary


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def load_onnx(path: str | Path):
    """Load and check an ONNX file; a missing, truncated or corrupt file is an :class:`EdgesegError`."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise EdgesegError(f"ONNX file not found: {p}")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgesegError(f"{p} is not a valid ONNX model: {first}") from exc
    return model


def _check_opset(opset: int, trt_version: str | None, add) -> None:
    """The opset against ``trt_version``'s documented range; without a version, against the newest range (an
    error outside it) and the oldest TensorRT 10 range (a warning: JetPack 6's 10.3 parses less)."""
    if trt_version is not None:
        low, high = onnx_opset_range(trt_version)
        if not low <= opset <= high:
            add(Finding("error", "opset", "-", f"opset {opset} outside TensorRT {trt_version}'s {low}-{high}"))
        return
    low, high = OPSET_RANGES[-1][1]
    if not low <= opset <= high:
        add(Finding("error", "opset", "-", f"opset {opset} outside TensorRT's {low}-{high}"))
    elif opset > OPSET_RANGES[0][1][1]:
        add(Finding("warning", "opset", "-", f"opset {opset} is newer than TensorRT 10.0-10.14 document (up to "
                                             f"{OPSET_RANGES[0][1][1]}; JetPack 6 ships 10.3): check with "
                                             f"edgeseg lint --trt-version"))


def lint_model(model, path: str = "<model>", trt_version: str | None = None) -> LintReport:
    """Lint ``model`` for the TensorRT parser; ``trt_version`` (e.g. ``"10.3"``) checks the opset against that
    version's documented range."""
    import onnx

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = LintReport(path, opset, len(graph.node), dict(Counter(n.op_type for n in graph.node)))
    add = report.findings.append
    _check_opset(opset, trt_version, add)

    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producers = {o: n for n in graph.node for o in n.output}
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    elem_types = {v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.output)}
    elem_types.update({v.name: v.type.tensor_type.elem_type for v in graph.value_info})

    for node in graph.node:
        name = node.name or node.output[0]
        if node.domain not in ("", "ai.onnx"):
            add(Finding("error", "custom-op", name, f"{node.domain}::{node.op_type} needs a TensorRT plugin"))
        elif node.op_type not in SUPPORTED_OPS:
            add(Finding("error", "unsupported-op", name, f"{node.op_type} is not in TensorRT's ONNX support list"))
        if node.op_type == "Resize":
            mode = _text(_attr(node, "mode", b"nearest"))
            ctm = _text(_attr(node, "coordinate_transformation_mode", b"half_pixel"))
            nearest = _text(_attr(node, "nearest_mode", b"round_prefer_floor"))
            detail = f"mode={mode} coordinate_transformation_mode={ctm}" + (f" nearest_mode={nearest}"
                                                                            if mode == "nearest" else "")
            add(Finding("info", "resize", name, detail))
            if mode not in RESIZE_MODES:
                add(Finding("error", "resize-mode", name, f"Resize mode {mode!r} unsupported (nearest, linear)"))
            if ctm not in RESIZE_COORDINATE_MODES:
                add(Finding("error", "resize-coordinates", name, f"coordinate_transformation_mode {ctm!r} unsupported"))
            if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
                add(Finding("error", "resize-nearest", name, f"nearest_mode {nearest!r} unsupported"))
            if _attr(node, "antialias", 0):
                add(Finding("error", "resize-antialias", name, "antialiased Resize is unsupported"))
            if mode == "linear" and ctm == "tf_half_pixel_for_nn":
                add(Finding("warning", "resize-coordinates", name, "tf_half_pixel_for_nn is meant for nearest"))
        if node.op_type in POOL_OPS and any(d != 1 for d in (_attr(node, "dilations") or [])):
            add(Finding("error", "pool-dilation", name, f"{node.op_type} dilations must be all ones"))
        if node.op_type in REDUCE_OPS and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            add(Finding("error", "reduce-axes", name, f"{node.op_type} axes must be an initializer"))
        if node.op_type == "Pad" and len(node.input) > 1 and node.input[1] not in constants:
            add(Finding("error", "computed-pad", name, "Pad amounts are computed at run time (a shape-tensor "
                                                        "subgraph TensorRT rejects): use constant pads"))
        if node.op_type in SHAPE_CONSUMERS:
            for inp in node.input[1:]:
                src = producers.get(inp)
                if src is not None and _reaches_shape(src, producers):
                    add(Finding("error", "shape-subgraph", name, f"{node.op_type} input {inp!r} is computed from a "
                                                                 f"Shape op at run time; export with static shapes"))
                    break
        if node.op_type == "Shape":
            add(Finding("warning", "shape-op", name, "Shape op left in the graph (dynamic shape arithmetic)"))
        if node.op_type == "Cast" and _attr(node, "to") == onnx.TensorProto.UINT8:
            src = producers.get(node.input[0])
            if node.output[0] not in graph_outputs:
                add(Finding("error", "uint8-internal", name, "UINT8 is only allowed as network input or output"))
            if src is not None and src.op_type in ("ArgMax", "ArgMin"):
                add(Finding("error", "argmax-to-uint8", name, "ArgMax → Cast(uint8) directly: go through float "
                                                              "(ArgMax → Cast(float) → Cast(uint8))"))
            if elem_types.get(node.input[0]) == onnx.TensorProto.BOOL or (
                    src is not None and src.op_type in BOOL_PRODUCERS):
                add(Finding("error", "bool-to-uint8", name, "Cast(bool → uint8): TensorRT converts to UINT8 only "
                                                            "from float or half: go through float "
                                                            "(Cast(float) → Cast(uint8))"))
        if node.op_type == "Cast" and elem_types.get(node.input[0]) == onnx.TensorProto.UINT8 \
                and node.input[0] not in graph_inputs:
            add(Finding("error", "uint8-internal", name, "UINT8 is only allowed as network input or output"))
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = next((i for i in graph.initializer if i.name == node.input[2]), None)
            if zp is not None and onnx.numpy_helper.to_array(zp).any():
                add(Finding("error", "qdq-zero-point", name, "TensorRT needs zero points of 0 (symmetric)"))
    return report


def _reaches_shape(node, producers, depth: int = 0, seen=None) -> bool:
    """Whether ``node`` is computed (through a chain of ops) from a ``Shape`` op."""
    seen = set() if seen is None else seen
    if node.op_type == "Shape":
        return True
    if depth > 12 or id(node) in seen:
        return False
    seen.add(id(node))
    return any(_reaches_shape(producers[i], producers, depth + 1, seen) for i in node.input if i in producers)


def lint_file(path: str | Path, trt_version: str | None = None) -> LintReport:
    """:func:`lint_model` on the ONNX file at ``path``."""
    return lint_model(load_onnx(path), str(path), trt_version)


def simplify_and_lint(path: str | Path, method: str = "onnxsim"):
    """Simplify ``path`` in place and lint it; a graph with lint errors is refused.
    Returns ``(simplify info, ModelProto, LintReport)``."""
    from edgeseg.export.simplify import simplify_onnx

    simplified = simplify_onnx(path, method)
    proto = load_onnx(path)
    lint = lint_model(proto, Path(path).name)
    if lint.errors:
        raise EdgesegError(f"TensorRT lint found {len(lint.errors)} errors in {Path(path).name}, e.g. "
                           f"{lint.errors[0].code}: {lint.errors[0].message} (run edgeseg lint on it for all)")
    return simplified, proto, lint
