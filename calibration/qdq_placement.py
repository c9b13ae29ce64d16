"""Where the TensorRT-target INT8 model puts its Q/DQ pairs, decided on the float32 graph.

TensorRT's explicit-quantization placement rules (developer guide, "Working with Quantized Types": Q/DQ
placement recommendations), as NVIDIA Model Optimizer's ONNX PTQ applies them:

* quantize the **inputs** of weighted layers (Conv, ConvTranspose, Gemm, MatMul): the activation per tensor, the
  weight per output channel (Conv axis 0; ConvTranspose axis 1, its weight being [in, out/group, kH, kW];
  Gemm axis 0 with ``transB``, else 1; MatMul the last axis of B);
* never the **outputs**: TensorRT fuses a Q that follows a layer into it when the next layer wants INT8, and an
  output Q/DQ that nothing quantized consumes only adds rounding;
* at a **residual Add** (one input is a convolution's branch, through BatchNormalization / Relu / a constant
  bias or scale), quantize the *residual* input: TensorRT then fuses conv + add (+ relu) into one INT8 kernel.
  The conv-branch input stays unquantized: a Q/DQ there separates the convolution from the addition (the
  guide's "suboptimal fusion" figure; Model Optimizer removes it the same way). When both inputs are conv
  branches, the deeper one (more nodes since the inputs' common ancestors) is the branch TensorRT fuses, the
  other the residual. An Add with no conv branch (feature sums after Resize, Concat...) is left in float;
* the **logits heads** (weighted layers with no weighted layer after them) and everything after them (final
  Resize, ArgMax/TopK, Softmax, the casts) stay out of INT8, so labels never come from int8-rounded logits;
* convolutions too narrow for TensorRT's INT8 kernels stay FP16 (Model Optimizer's rule): fewer than 16 input
  or output channels, unless an ungrouped square-kernel conv with one side >= 16 and one a multiple of 8, or a
  grouped conv with output channels a multiple of 8 and kernels of 3 or more (LEDNet's 1-channel attention
  convs, its 3→29 first conv).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CONV = ("Conv", "ConvTranspose")
# ops TensorRT folds into a convolution between it and a following Add (bias, scale, batch norm, relu)
_FUSIBLE_CHAIN = ("BatchNormalization", "Relu")


@dataclass
class QdqPlan:
    """Q/DQ positions on a float32 graph, each as (consumer node name, input index, tensor)."""

    activations: list[tuple[str, int, str]] = field(default_factory=list)
    weights: list[tuple[str, int, str, int | None]] = field(default_factory=list)  # axis None: per tensor
    heads: list[str] = field(default_factory=list)  # logits heads: out of INT8
    tail: list[str] = field(default_factory=list)  # the heads and every node after them
    residual_adds: dict[str, int] = field(default_factory=dict)  # Add node -> index of its quantized input
    narrow: list[str] = field(default_factory=list)  # convolutions too narrow for INT8 kernels: FP16

    def activation_tensors(self) -> list[str]:
        """The activation tensors quantized (each once, shared by its quantized consumers)."""
        return sorted({t for _, _, t in self.activations})


def name_nodes(model) -> None:
    """Give every unnamed node a unique name in place (positions and exclusions are keyed by node name)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _attr(node, name: str, default):
    import onnx

    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else onnx.helper.get_attribute_value(found)


def weight_axis(node, rank: int) -> int | None:
    """The per-channel axis TensorRT wants for ``node``'s weight of ``rank`` dimensions: the output channels.
    ``None`` means per tensor (a grouped ConvTranspose, whose axis 1 holds out/group channels only)."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1 if _attr(node, "group", 1) == 1 else None
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    if node.op_type == "MatMul":
        return rank - 1 if rank >= 2 else None
    raise ValueError(f"{node.op_type} has no weight axis")


class _Graph:
    def __init__(self, model) -> None:
        graph = model.graph
        self.nodes = list(graph.node)
        self.initializers = {i.name: i for i in graph.initializer}
        self.constants = set(self.initializers) | {o for n in self.nodes if n.op_type == "Constant" for o in n.output}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def activation_inputs(self, node) -> list[str]:
        return [i for i in node.input if i and i not in self.constants]

    def ancestors(self, tensor: str) -> set[str]:
        """Names of every node that ``tensor`` depends on."""
        seen: set[str] = set()
        stack = [tensor]
        while stack:
            node = self.producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            stack.extend(node.input)
        return seen

    def conv_branch(self, tensor: str):
        """The convolution whose output reaches ``tensor`` through ops TensorRT fuses into it, or None."""
        node = self.producer.get(tensor)
        while node is not None:
            if node.op_type in CONV:
                return node
            inputs = self.activation_inputs(node)
            fusible = node.op_type in _FUSIBLE_CHAIN or (node.op_type in ("Add", "Mul") and len(inputs) == 1)
            if not fusible or len(inputs) != 1:
                return None
            node = self.producer.get(inputs[0])
        return None


def conv_worth_int8(node, dims) -> bool:
    """Whether TensorRT has INT8 kernels worth using for Conv ``node`` with weight ``dims`` [out, in/group, k...]."""
    out_ch, in_ch, kernel = dims[0], dims[1], list(dims[2:])
    if out_ch >= 16 and in_ch >= 16:
        return True
    if _attr(node, "group", 1) == 1:
        return (out_ch % 8 == 0 or in_ch % 8 == 0) and max(out_ch, in_ch) >= 16 and len(set(kernel)) <= 1
    return out_ch % 8 == 0 and all(k >= 3 for k in kernel)


def _heads_and_tail(g: _Graph) -> tuple[list[str], list[str]]:
    weighted_after: dict[str, bool] = {}
    for node in reversed(g.nodes):  # topological order: consumers come later
        weighted_after[node.name] = any(c.op_type in WEIGHTED or weighted_after.get(c.name, False)
                                        for o in node.output for c in g.consumers.get(o, []))
    heads = [n.name for n in g.nodes if n.op_type in WEIGHTED and not weighted_after[n.name]]
    tail, in_tail = [], set(heads)
    for node in g.nodes:
        if node.name in in_tail or any(g.producer[i].name in in_tail for i in node.input if i in g.producer):
            in_tail.add(node.name)
            tail.append(node.name)
    return heads, tail


def _residual_input(g: _Graph, node) -> int | None:
    """Index of the input of Add ``node`` to quantize (its residual), or None when it is no residual Add."""
    if len(node.input) != 2 or any(i in g.constants or not i for i in node.input):
        return None
    branches = [g.conv_branch(t) for t in node.input]
    if branches[0] is None and branches[1] is None:
        return None
    if branches[0] is None or branches[1] is None:
        return 0 if branches[0] is None else 1
    if branches[0].name == branches[1].name:
        return None
    ancestors = [g.ancestors(t) for t in node.input]
    depth = [len(ancestors[0] - ancestors[1]), len(ancestors[1] - ancestors[0])]
    return 1 if depth[0] >= depth[1] else 0  # the deeper branch fuses with the Add; the other is the residual


def plan_qdq(model, exclude: list[str] | None = None) -> QdqPlan:
    """The Q/DQ positions of the TensorRT INT8 model for ``model`` (a float32 ``ModelProto``, nodes named and
    topologically sorted); nodes named in ``exclude`` get none (they run in FP16)."""
    g = _Graph(model)
    excluded = set(exclude or [])
    heads, tail = _heads_and_tail(g)
    out_of_int8 = excluded | set(tail)
    plan = QdqPlan(heads=heads, tail=tail)
    for node in g.nodes:
        if node.name in out_of_int8:
            continue
        if node.op_type in WEIGHTED:
            weight = g.initializers.get(node.input[1])
            if node.op_type == "Conv" and weight is not None and not conv_worth_int8(node, list(weight.dims)):
                plan.narrow.append(node.name)
                continue
            for index, tensor in enumerate(node.input[:2]):
                if tensor in g.initializers:
                    rank = len(g.initializers[tensor].dims)
                    if index == 1:
                        plan.weights.append((node.name, index, tensor, weight_axis(node, rank)))
                elif tensor and tensor not in g.constants:
                    plan.activations.append((node.name, index, tensor))
        elif node.op_type == "Add":
            index = _residual_input(g, node)
            if index is not None:
                plan.residual_adds[node.name] = index
                plan.activations.append((node.name, index, node.input[index]))
    return plan


__all__ = ["CONV", "WEIGHTED", "QdqPlan", "conv_worth_int8", "name_nodes", "plan_qdq", "weight_axis"]
