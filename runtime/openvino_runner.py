"""OpenVINO backend: the same ONNX files as ONNX Runtime, on OpenVINO's CPU plugin.

Settings that make a latency figure mean one thing: ``PERFORMANCE_HINT=LATENCY`` (one stream, every thread on
one inference), ``INFERENCE_NUM_THREADS`` from ``threads``, and ``INFERENCE_PRECISION_HINT=f32``. The last one
matters: on a CPU with BF16 (AVX512-BF16, AMX) or FP16 (ARM) arithmetic the plugin's default computes an fp32
model in bf16/f16, so an "fp32" row would not be fp32. With it, ``model.fp16.onnx`` runs with its weights
widened to f32 and computes in f32 (a smaller file, not faster arithmetic), and a Q/DQ INT8 file (either
``--int8-target``) runs its quantized layers in int8 and the rest in f32. What actually ran is read back from
the compiled model (``compute``), not assumed. openvino is imported only when a runner activates.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.runner import Runner, TensorSpec

log = logging.getLogger(__name__)

DEVICE = "CPU"
# Layer types whose runtime precision says what a model computes in (the rest are mostly reorders and casts).
_HEAVY = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul")


def compile_config(threads: int | None) -> dict[str, Any]:
    """The CPU plugin's properties for one runner (module docstring: why each)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def compute_summary(compiled) -> str:
    """What the compiled model computes in, read from its runtime graph: the precision hint and the runtime
    precision of its convolution and matrix layers, e.g. ``f32; 115 of 115 conv/matmul layers in u8``."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: f32, bf16, f16
    hint = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in _HEAVY and "runtimePrecision" in info:
            counts[info["runtimePrecision"].astype(str)] += 1
    total = sum(counts.values())
    low = {p: n for p, n in counts.items() if p in ("u8", "i8")}
    if not low:
        return hint
    return f"{hint}; " + ", ".join(f"{n} of {total} conv/matmul layers in {p}" for p, n in sorted(low.items()))


class OpenVinoRunner(Runner):
    """Runs an ONNX file with OpenVINO on the CPU. ``threads``: inference threads (default: all cores). Threads
    that call ``infer`` at once (``edgeseg run --streams K``) each get their own infer request."""

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__(f"openvino:{Path(path).name}")
        self.path = Path(path)
        self.threads = threads
        self.compiled: Any = None
        self.compute: str | None = None  # what ran, read back after compiling (see compute_summary)
        self._requests = threading.local()
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    def activate(self) -> None:
        import openvino as ov

        if not self.path.is_file():
            raise EdgesegError(f"ONNX file not found: {self.path}")
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.path)), DEVICE, compile_config(self.threads))
        except Exception as exc:  # openvino raises RuntimeError/GeneralFailure with multi-line messages
            text = str(exc).strip()
            first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
            raise EdgesegError(f"OpenVINO cannot load {self.path}: {first}") from exc
        self._inputs = [self._spec(p) for p in self.compiled.inputs]
        self._outputs = [self._spec(p) for p in self.compiled.outputs]
        self.compute = compute_summary(self.compiled)
        log.debug("%s on OpenVINO %s: %s, %s threads", self.path, ov.get_version(), self.compute,
                  self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def deactivate(self) -> None:
        self.compiled = None
        self._requests = threading.local()

    @staticmethod
    def _spec(port) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
        return TensorSpec(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()).name, shape)

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def _request(self):
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request().infer(feed)  # outputs are copied out of the request (share_outputs=False)
        return {spec.name: result[port] for spec, port in zip(self._outputs, self.compiled.outputs)}
