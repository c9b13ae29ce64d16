"""The backends edgeseg runs a bundle on: one table (name, availability probe, precisions, the bundle file kind
it runs), so a new backend touches this table and its runner. No torch, no onnx: probing imports nothing heavy
unless asked (``backend_missing``). Two backends run ONNX files (ONNX Runtime and OpenVINO); which one ``auto``
takes is one rule, :func:`auto_onnx_backend`."""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
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
    # OpenVINO's CPU plugin runs the same ONNX files; fp16 files are computed in f32 (runtime/openvino_runner.py)
    Backend("openvino", "openvino", "pip install edgeseg[openvino]", PRECISIONS, "onnx", (".onnx",)),
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


def backends_of_kind(kind: str | None) -> tuple[str, ...]:
    """The backends that run bundle files of ``kind``, in table order (none for reports, caches, ...)."""
    return tuple(b.name for b in BACKENDS.values() if b.kind == kind)


def backends_of_suffix(suffix: str) -> tuple[str, ...]:
    """The backends that run a lone file with this ending, in table order."""
    return tuple(b.name for b in BACKENDS.values() if suffix in b.suffixes)


# CPUs where OpenVINO ran the project's ONNX files faster than ONNX Runtime (benchmarks/results/backends.json).
# aarch64 is not among them: not measured there, and a Jetson runs TensorRT anyway.
OPENVINO_PREFERRED_MACHINES = ("x86_64", "amd64")


def auto_onnx_backend(providers: str = "cpu", machine: str | None = None,
                      missing: Callable[[str], str | None] | None = None) -> str:
    """The backend ``auto`` runs an ONNX file with, the one place this is decided: OpenVINO on an x86 CPU when
    it is installed and ONNX Runtime's CPU provider is all that was asked for, else ONNX Runtime (any other
    machine, OpenVINO missing, or ``providers`` naming a GPU execution provider)."""
    machine = (machine if machine is not None else platform.machine()).lower()
    probe = missing or backend_missing
    if providers == "cpu" and machine in OPENVINO_PREFERRED_MACHINES and probe("openvino") is None:
        return "openvino"
    return "onnxruntime"


def backend_missing(name: str) -> str | None:
    """Why backend ``name`` cannot run here, or None when it can. Any failure to import counts (a TensorRT
    whose CUDA libraries are missing raises OSError, not ImportError), so ``auto`` falls back cleanly."""
    entry = backend(name)
    if importlib.util.find_spec(entry.module) is None:
        return f"{entry.module} is not installed ({entry.install})"
    if name in ("tensorrt", "openvino"):  # native libraries: a wheel for the wrong glibc or CUDA fails to load
        try:
            module = importlib.import_module(entry.module)
        except Exception as exc:  # noqa: BLE001 - a broken install must not break ONNX-Runtime-only runs
            return f"{entry.module} does not import: {type(exc).__name__}: {exc}"
        if name == "tensorrt" and not hasattr(module, "Builder"):  # tensorrt-stubs alone: an empty namespace
            return "only tensorrt-stubs is installed, not TensorRT itself"
    return None
