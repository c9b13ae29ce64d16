"""The backends edgeseg runs a bundle on: one table (name, availability probe, precisions, the bundle file kind
it runs), so a new backend touches this table and its runner. No torch, no onnx: probing imports nothing heavy
unless asked (``backend_missing``)."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from edgeseg.errors import EdgesegError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Backend:
    """One way to run a model: the Python module that must import, how to install it, the precisions it runs
    (of files of ``kind`` in a bundle; the torch backend runs the fp32 checkpoint, in fp16 on a GPU) and the
    file endings it takes outside a bundle."""

    name: str
    module: str
    install: str
    precisions: tuple[str, ...]
    kind: str
    suffixes: tuple[str, ...] = ()


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("onnxruntime", "onnxruntime", "pip install onnxruntime", PRECISIONS, "onnx", (".onnx",)),
    Backend("tensorrt", "tensorrt", "install TensorRT on a machine with an NVIDIA GPU: pip install "
            "edgeseg[tensorrt-cu12] (CUDA 12) or edgeseg[tensorrt-cu13] (CUDA 13); on a Jetson, JetPack's "
            "python3-libnvinfer",
            PRECISIONS, "engine", (".engine", ".plan")),
    Backend("torch", "torch", "pip install torch", ("fp32", "fp16"), "checkpoint", (".pt", ".pth")),
)}
BACKEND_CHOICES = ("auto", *BACKENDS)


def backend(name: str) -> Backend:
    """The table entry for ``name``; an unknown name is one line listing the choices."""
    if name not in BACKENDS:
        raise EdgesegError(f"unknown backend {name!r}; choose {', '.join(BACKEND_CHOICES)}")
    return BACKENDS[name]


def backend_of_kind(kind: str | None) -> str | None:
    """The backend that runs bundle files of ``kind`` (None for reports, caches, ...)."""
    return next((b.name for b in BACKENDS.values() if b.kind == kind), None)


def backend_of_suffix(suffix: str) -> str | None:
    """The backend that runs a lone file with this ending."""
    return next((b.name for b in BACKENDS.values() if suffix in b.suffixes), None)


def backend_missing(name: str) -> str | None:
    """Why backend ``name`` cannot run here, or None when it can. Any failure to import counts (a TensorRT
    whose CUDA libraries are missing raises OSError, not ImportError), so ``auto`` falls back cleanly."""
    entry = backend(name)
    if importlib.util.find_spec(entry.module) is None:
        return f"{entry.module} is not installed ({entry.install})"
    if name == "tensorrt":
        try:
            trt = importlib.import_module("tensorrt")
        except Exception as exc:  # noqa: BLE001 - a broken install must not break ONNX-Runtime-only runs
            return f"tensorrt does not import: {type(exc).__name__}: {exc}"
        if not hasattr(trt, "Builder"):  # tensorrt-stubs alone installs an empty namespace
            return "only tensorrt-stubs is installed, not TensorRT itself"
    return None
