"""Graph simplification with onnxsim (default) or onnxslim; the caller verifies the result."""

from __future__ import annotations

import logging
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.stdio import stdout_to_stderr

log = logging.getLogger(__name__)
METHODS = ("onnxsim", "onnxslim", "none")


def simplify_onnx(path: str | Path, method: str = "onnxsim") -> dict:
    """Simplify the ONNX file in place; returns ``{"method", "nodes_before", "nodes_after"}``."""
    import onnx

    if method not in METHODS:
        raise EdgesegError(f"unknown simplifier {method!r}; choose {', '.join(METHODS)}")
    model = onnx.load(str(path))
    before = len(model.graph.node)
    if method == "none":
        return {"method": method, "nodes_before": before, "nodes_after": before}
    if method == "onnxsim":
        try:
            import onnxsim
        except ImportError:
            raise EdgesegError("--simplify onnxsim needs onnxsim: pip install onnxsim "
                               "(or --simplify onnxslim|none)") from None
        with stdout_to_stderr():  # onnxsim's C++ prints: logs, not results
            simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise EdgesegError("onnxsim could not validate the simplified model")
    else:
        try:
            import onnxslim
        except ImportError:
            raise EdgesegError("--simplify onnxslim needs onnxslim: pip install onnxslim") from None
        with stdout_to_stderr():  # onnxslim prints its summary table
            simplified = onnxslim.slim(model)
    with atomic_path(path) as tmp:
        onnx.save(simplified, str(tmp))
    after = len(simplified.graph.node)
    log.info("%s: %d -> %d nodes", method, before, after)
    return {"method": method, "nodes_before": before, "nodes_after": after}
