"""``load_runner(path_or_bundle, backend="auto")``: one entry point for every backend."""

from __future__ import annotations

import os
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import is_bundle, open_bundle
from edgeseg.runtime.runner import Runner

BACKENDS = ("auto", "onnxruntime", "torch")


def load_runner(path: str | os.PathLike, backend: str = "auto", *, precision: str = "fp32",
                providers: str = "cpu", threads: int | None = None, device: str = "cpu") -> Runner:
    """A runner for a bundle folder, a file in a bundle, an ``.onnx`` file or an edgeseg checkpoint.

    Files inside a bundle are checked against the manifest's sha256 before they run. ``auto`` takes the
    bundle's ONNX with ONNX Runtime (TensorRT engines join in with issue 7); a checkpoint runs with torch.
    """
    if backend not in BACKENDS:
        raise EdgesegError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    p = Path(path)
    if not p.exists():
        raise EdgesegError(f"{p} not found")
    if p.is_dir() or is_bundle(p):
        return _bundle_runner(p, backend, precision, providers, threads, device)
    if p.suffix == ".onnx":
        if backend == "torch":
            raise EdgesegError(f"{p} is an ONNX file; the torch backend needs a checkpoint or a bundle")
        from edgeseg.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(p, providers, threads)
    if p.suffix in (".pt", ".pth"):
        raise EdgesegError(f"{p} is a checkpoint: export it to a bundle first (edgeseg export --checkpoint {p}), "
                           f"or evaluate it directly with edgeseg eval {p}")
    raise EdgesegError(f"{p}: expected a bundle folder, an .onnx file or a .pt checkpoint")


def _bundle_runner(p: Path, backend, precision, providers, threads, device) -> Runner:
    bundle = open_bundle(p)
    chosen = p.name if p.is_file() else None
    if backend in ("auto", "onnxruntime"):
        name = chosen if chosen and chosen.endswith(".onnx") else bundle.find("onnx", precision)
        if name is None:
            raise EdgesegError(f"{bundle.root} has no {precision} ONNX model")
        from edgeseg.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(bundle.path(name), providers, threads)
    if precision != "fp32":
        raise EdgesegError(f"the torch backend runs the fp32 weights; use --backend onnxruntime for {precision}")
    name = bundle.find("checkpoint", "fp32")
    if name is None:
        raise EdgesegError(f"{bundle.root} has no model.pt for the torch backend")
    outputs = tuple(o["name"] for o in bundle.manifest.get("outputs", [{"name": "labels"}]))
    batch = bundle.manifest["input"]["shape"][0]
    from edgeseg.runtime.torch_runner import TorchRunner

    return TorchRunner(bundle.path(name), bundle.input_size, batch, outputs, device, threads)
