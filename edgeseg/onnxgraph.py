"""Small ONNX graph utilities."""

from __future__ import annotations


def topological_sort(model) -> None:
    """Reorder ``model.graph.node`` in place so every node follows its inputs' producers (the ONNX checker
    and TensorRT's parser require it; some converters append the nodes they insert at the end)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        remaining = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            missing = {i for n in remaining for i in n.input if i not in available}
            raise ValueError(f"graph has a cycle or undefined inputs: {sorted(missing)[:3]}")
        pending = remaining
    del graph.node[:]
    graph.node.extend(ordered)


def with_outputs(model, names):
    """A copy of ``model`` that also outputs the float tensors ``names`` (intermediate values, for comparison)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return copy
