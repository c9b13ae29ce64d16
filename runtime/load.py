"""``load_runner(path_or_bundle, backend="auto")``: one entry point for every backend."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edgeseg.crf.params import CRFParams
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import BACKENDS, auto_onnx_backend, backend_missing
from edgeseg.runtime.backends import backend as backend_entry
from edgeseg.runtime.bundle import LABELS, Bundle, graph_options, is_bundle, open_bundle
from edgeseg.runtime.manifest import FileEntry
from edgeseg.runtime.runner import Runner

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = BACKENDS["tensorrt"].suffixes


def load_runner(path: str | os.PathLike, backend: str = "auto", *, precision: str = "fp32",
                providers: str = "cpu", threads: int | None = None, device: str = "cpu", streams: int = 1,
                cuda_graph: bool = False, crf: CRFParams | None = None) -> Runner:
    """A runner for a bundle folder, a file in a bundle, an ``.onnx`` file or a TensorRT engine.

    Files inside a bundle are checked against the manifest's sha256 before they run, and engines against the
    TensorRT version and GPU they were built for. ``auto`` takes the bundle's engine of that precision when
    TensorRT is usable here, else its ONNX with the backend :func:`~edgeseg.runtime.backends.auto_onnx_backend`
    picks (OpenVINO on an x86 CPU when installed, else ONNX Runtime). ``streams`` is how many threads will call the
    runner at once (TensorRT gives each its own execution context and CUDA stream). ``device`` is where the torch
    backend runs: ``cpu``, ``cuda[:N]`` or ``auto`` (:func:`auto_torch_device`).
    """
    if backend != "auto":
        backend_entry(backend)  # an unknown name is refused here
    p = Path(path)
    if not p.exists():
        raise EdgesegError(f"{p} not found")
    if p.is_dir() or is_bundle(p):
        return _bundle_runner(p, backend, precision, providers, threads, device, streams, cuda_graph, crf)
    if p.suffix in ENGINE_SUFFIXES:
        if backend not in ("auto", "tensorrt"):
            raise EdgesegError(f"{p} is a TensorRT engine; it runs only with --backend tensorrt")
        from edgeseg.runtime.tensorrt_runner import TensorRTRunner

        log.warning("%s is not in a bundle: its TensorRT version and GPU cannot be checked before loading", p)
        return TensorRTRunner(p, slots=streams, cuda_graph=cuda_graph)
    if p.suffix == ".onnx":
        if backend == "torch":
            raise EdgesegError(f"{p} is an ONNX file; the torch backend needs a checkpoint or a bundle")
        return onnx_runner(p, backend, providers, threads)
    if p.suffix in (".pt", ".pth"):
        raise EdgesegError(f"{p} is a checkpoint: export it to a bundle first (edgeseg export --checkpoint {p}), "
                           f"or evaluate it directly with edgeseg eval {p}")
    raise EdgesegError(f"{p}: expected a bundle folder, an .onnx file or a .pt checkpoint")


def auto_torch_device() -> str:
    """``cuda`` when torch sees a CUDA GPU, else ``cpu`` (what ``--device auto`` means for the torch backend;
    imports torch, which only that backend needs)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def onnx_runner(path: Path, backend: str = "auto", providers: str = "cpu", threads: int | None = None) -> Runner:
    """A runner for ONNX file ``path`` with ``backend`` (onnxruntime, openvino, or auto: the one rule in
    :func:`~edgeseg.runtime.backends.auto_onnx_backend`). ``providers`` are ONNX Runtime's alone."""
    if backend == "auto":
        backend = auto_onnx_backend(providers)
    if backend == "openvino":
        if providers != "cpu":
            raise EdgesegError(f"--providers {providers} is for ONNX Runtime; OpenVINO runs on the CPU here "
                               f"(use --backend onnxruntime)")
        if (reason := backend_missing("openvino")) is not None:
            raise EdgesegError(f"backend openvino cannot run here: {reason}")
        from edgeseg.runtime.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(path, threads)
    from edgeseg.runtime.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, providers, threads)


def engine_runner(bundle: Bundle, name: str, streams: int, cuda_graph: bool, then: str | None = None) -> Runner:
    """A TensorRT runner for engine ``name`` of ``bundle`` (and ``then`` chained after it), each checked
    against the TensorRT version and GPU here."""
    from edgeseg.runtime.build import load_tensorrt
    from edgeseg.runtime.cuda import get_cuda
    from edgeseg.runtime.engine_plan import check_engine_identity, runtime_settings
    from edgeseg.runtime.tensorrt_runner import TensorRTRunner

    trt = load_tensorrt()
    gpu = get_cuda().device_info()
    for engine in (name, then) if then else (name,):
        for warning in check_engine_identity(engine, bundle.entry(engine), trt_version=trt.__version__,
                                             gpu_name=gpu["name"], gpu_cc=gpu["compute_capability"],
                                             bundle=str(bundle.root)):
            log.warning(warning)
    return TensorRTRunner(bundle.path(name), slots=streams, cuda_graph=cuda_graph,
                          then=bundle.path(then) if then else None,
                          settings=runtime_settings(bundle.entry(name).engine),
                          then_settings=runtime_settings(bundle.entry(then).engine) if then else None)


def pick_engine(files: dict[str, FileEntry], precision: str) -> str | None:
    """The engine ``auto`` and ``--backend tensorrt`` run for ``precision``: a GPU engine before a DLA one
    (DLA trades speed for power and frees the GPU; it is chosen by naming its file), then by name."""
    engines = sorted((entry.engine is not None and entry.engine.dla_core is not None, name)
                     for name, entry in files.items() if entry.kind == "engine" and entry.model_precision == precision)
    return engines[0][1] if engines else None


def _bundle_runner(p: Path, backend, precision, providers, threads, device, streams=1, cuda_graph=False,
                   crf=None) -> Runner:
    bundle = open_bundle(p)
    chosen = p.name if p.is_file() else None
    if chosen is None:
        engine = pick_engine(bundle.files, precision)
    else:
        engine = chosen if chosen.endswith(ENGINE_SUFFIXES) else None
    if backend == "tensorrt" or (backend == "auto" and engine and backend_missing("tensorrt") is None):
        if engine is None:
            raise EdgesegError(f"{bundle.root} has no {precision} TensorRT engine: edgeseg build {bundle.root} "
                               f"--precision {precision}")
        return engine_runner(bundle, engine, streams, cuda_graph)
    if backend == "auto" or BACKENDS[backend].kind == "onnx":
        name = chosen if chosen and chosen.endswith(".onnx") else bundle.find("onnx", precision)
        if name is None:
            raise EdgesegError(f"{bundle.root} has no {precision} ONNX model")
        return onnx_runner(bundle.path(name), backend, providers, threads)
    if device == "auto":
        device = auto_torch_device()
    on_gpu = device.startswith("cuda")
    if precision not in (BACKENDS["torch"].precisions if on_gpu else ("fp32",)):
        where = "on a GPU (--device cuda)" if on_gpu else "on a CPU"
        raise EdgesegError(f"the torch backend runs {'fp32 or fp16' if on_gpu else 'fp32'} {where}; "
                           f"use --backend onnxruntime for {precision}")
    name = bundle.find("checkpoint", "fp32")
    if name is None:
        raise EdgesegError(f"{bundle.root} has no model.pt for the torch backend")
    outputs = tuple(o.name for o in bundle.manifest.outputs) or (LABELS,)
    batch = bundle.batch
    if on_gpu:
        from edgeseg.runtime.torch_cuda_runner import TorchCudaRunner

        return TorchCudaRunner(bundle.path(name), bundle.feed_size, batch, outputs, device=device,
                               precision=precision, cuda_graph=cuda_graph, slots=streams, crf=crf,
                               graph=graph_options(bundle.manifest))
    from edgeseg.runtime.torch_runner import TorchRunner

    return TorchRunner(bundle.path(name), bundle.input_size, batch, outputs, device, threads, crf,
                       graph=graph_options(bundle.manifest))
