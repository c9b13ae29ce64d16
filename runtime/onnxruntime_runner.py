"""ONNX Runtime backend: the CPU path everywhere, CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.runner import Runner, TensorSpec

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(bool)": "bool"}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_providers(requested: str = "cpu") -> list[str]:
    """``cpu``, ``cuda``, ``tensorrt``, or ``auto`` (the fastest installed, always ending with the CPU)."""
    available = available_providers()
    order = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}
    if requested == "auto":
        return [p for p in order["tensorrt"] if p in available]
    if requested not in order:
        raise EdgesegError(f"unknown ONNX Runtime provider {requested!r}; choose cpu, cuda, tensorrt or auto")
    if order[requested][0] not in available:
        raise EdgesegError(f"ONNX Runtime has no {order[requested][0]} here (available: {', '.join(available)})")
    return order[requested]


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with onnxruntime. ``threads`` sets intra-op threads (default: all cores)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, providers: str = "cpu", threads: int | None = None) -> None:
        super().__init__(f"onnxruntime:{Path(path).name}")
        self.path = Path(path)
        self.provider_choice = providers
        self.threads = threads
        self.session: Any = None

    def activate(self) -> None:
        import onnxruntime as ort

        if not self.path.is_file():
            raise EdgesegError(f"ONNX file not found: {self.path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=choose_providers(self.provider_choice))
        except EdgesegError:
            raise
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / RuntimeException types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgesegError(f"cannot load ONNX model {self.path}: {first}") from exc
        log.debug("%s on %s", self.path, self.session.get_providers())

    def deactivate(self) -> None:
        self.session = None

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
        return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)

    def inputs(self) -> list[TensorSpec]:
        return [self._spec(a) for a in self.session.get_inputs()]

    def outputs(self) -> list[TensorSpec]:
        return [self._spec(a) for a in self.session.get_outputs()]

    def providers(self) -> list[str]:
        return list(self.session.get_providers()) if self.session else []

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))
