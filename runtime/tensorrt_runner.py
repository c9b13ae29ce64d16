"""TensorRT backend: the name-based API of TensorRT 10 / 11 behind the runner contract.

Each of ``slots`` execution slots owns an execution context, device and pinned host buffers for every I/O
tensor (allocated once), a CUDA stream and four events. ``infer`` takes a free slot, so K threads (the
pipeline's K streams) keep K frames in flight on K CUDA streams: H2D → ``execute_async_v3`` → D2H, timed with
events into ``last_stages_ms`` (h2d, compute, d2h). With ``cuda_graph`` the enqueue is captured into a CUDA
graph after the first run and replayed. Timing attributes are per thread.

Written against the TensorRT 10.x Python API (type-checked with ``tensorrt-stubs``); not yet run on a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.cuda import CudaApi, DeviceBuffer, get_cuda
from edgeseg.runtime.runner import Runner, SlotPool, TensorSpec

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


class _Slot:
    def __init__(self, engine: trt.ICudaEngine, cuda: CudaApi, specs: list[tuple[TensorSpec, bool]]) -> None:
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EdgesegError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = cuda.stream()
        self.events = [cuda.event() for _ in range(4)]
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, DeviceBuffer] = {}
        self.graph = None
        for spec, is_input in specs:
            shape = tuple(int(d) for d in spec.shape)
            if is_input:
                self.context.set_input_shape(spec.name, shape)
            self.host[spec.name] = cuda.pinned(shape, spec.dtype)
            self.device[spec.name] = cuda.malloc(self.host[spec.name].nbytes)
            if not self.context.set_tensor_address(spec.name, self.device[spec.name].ptr):
                raise EdgesegError(f"TensorRT refused the address of tensor {spec.name!r}")


class TensorRTRunner(Runner):
    backend = "tensorrt"
    times_itself = True

    def __init__(self, engine_path: str | Path, *, slots: int = 1, cuda_graph: bool = False) -> None:
        super().__init__(f"tensorrt:{Path(engine_path).name}")
        self.path, self.slots, self.cuda_graph = Path(engine_path), slots, cuda_graph
        self.engine: trt.ICudaEngine | None = None
        self._pool = SlotPool()
        self._specs: list[tuple[TensorSpec, bool]] = []
        self._device_mib: float | None = None

    def activate(self) -> None:
        from edgeseg.runtime.build import load_tensorrt

        load_tensorrt()
        import tensorrt as trt

        self.cuda = get_cuda()
        free_before, _ = self.cuda.mem_info()
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EdgesegError(f"TensorRT cannot load {self.path} (built for another TensorRT or GPU, or damaged): "
                               f"rebuild it with edgeseg build")
        self.engine = engine
        self._specs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            dims = engine.get_tensor_shape(name)
            shape = tuple(int(dims[k]) if dims[k] >= 0 else 1 for k in range(len(dims)))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            self._specs.append((TensorSpec(name, dtype, shape), is_input))
        for _ in range(self.slots):
            self._pool.add(_Slot(engine, self.cuda, self._specs))
        free_after, _ = self.cuda.mem_info()
        self._device_mib = (free_before - free_after) / 2**20

    def deactivate(self) -> None:
        for slot in self._pool.all:
            self.cuda.synchronize(slot.stream)
            for buffer in slot.device.values():
                buffer.free()
            for array in slot.host.values():
                self.cuda.free_pinned(array)
        self._pool.clear()
        self.engine = None

    def inputs(self) -> list[TensorSpec]:
        return [spec for spec, is_input in self._specs if is_input]

    def outputs(self) -> list[TensorSpec]:
        return [spec for spec, is_input in self._specs if not is_input]

    def device_memory_mib(self) -> float | None:
        return self._device_mib

    def _enqueue(self, slot: _Slot) -> None:
        handle = self.cuda.stream_handle(slot.stream)
        if slot.graph is not None:
            self.cuda.launch(slot.graph, slot.stream)
        elif not slot.context.execute_async_v3(handle):
            raise EdgesegError(f"{self.name}: execute_async_v3 failed")

    def _capture(self, slot: _Slot) -> None:
        """Record the enqueue into a CUDA graph (after one ordinary run, as TensorRT requires)."""
        handle = self.cuda.stream_handle(slot.stream)
        self.cuda.capture_begin(slot.stream)
        try:
            slot.context.execute_async_v3(handle)
        finally:
            slot.graph = self.cuda.capture_end(slot.stream)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._pool.take() as slot:
            cuda, e = self.cuda, slot.events
            cuda.record(e[0], slot.stream)
            for spec in self.inputs():
                np.copyto(slot.host[spec.name], feed[spec.name])
                cuda.htod(slot.device[spec.name], slot.host[spec.name], slot.stream)
            cuda.record(e[1], slot.stream)
            self._enqueue(slot)
            cuda.record(e[2], slot.stream)
            for spec in self.outputs():
                cuda.dtoh(slot.host[spec.name], slot.device[spec.name], slot.stream)
            cuda.record(e[3], slot.stream)
            cuda.synchronize(slot.stream)
            self.last_stages_ms = {"h2d": cuda.elapsed_ms(e[0], e[1]), "compute": cuda.elapsed_ms(e[1], e[2]),
                                   "d2h": cuda.elapsed_ms(e[2], e[3])}
            self.last_latency_ms = cuda.elapsed_ms(e[0], e[3])
            if self.cuda_graph and slot.graph is None:
                self._capture(slot)
            return {spec.name: slot.host[spec.name].copy() for spec in self.outputs()}
