"""TensorRT backend: the name-based API of TensorRT 10 / 11 behind the runner contract.

Each of ``slots`` execution slots owns an execution context, device and pinned host buffers for every I/O
tensor (allocated once), a CUDA stream and four events. ``infer`` takes a free slot, so K threads (the
pipeline's K streams) keep K frames in flight on K CUDA streams: H2D → ``execute_async_v3`` → D2H, timed with
events into ``last_stages_ms`` (h2d, compute, d2h). With ``cuda_graph`` the enqueue is captured into a CUDA
graph after the first run and replayed; a capture that fails (an engine with work a graph cannot hold) is
discarded and the slot runs with plain enqueues, as trtexec does. Timing attributes are per thread. With
``then`` a second engine (the ConvCRF's ``crf.fp32.engine``) runs after the first on the same stream, reading
its inputs from the first engine's device buffers (same name, dtype and shape); only its outputs are copied
back. ``settings`` (from :func:`edgeseg.runtime.engine_plan.runtime_settings`) are set on the ``IRuntime``
before it deserializes: host code allowed for a version-compatible engine, the DLA core of a DLA engine.
Every buffer, stream, event and graph is released on deactivation.

Written against the TensorRT 10.x Python API (type-checked with ``tensorrt-stubs``); not yet run on a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.cuda import CudaApi, DeviceBuffer, get_cuda
from edgeseg.runtime.runner import Runner, SlotPool, TensorSpec

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


class _Slot:
    """An execution context with its buffers; tensors named in ``shared`` are bound to buffers another
    engine's context already owns (a chained engine reads its input where the first one left it)."""

    def __init__(self, engine: trt.ICudaEngine, cuda: CudaApi, specs: list[tuple[TensorSpec, bool]],
                 stream=None, shared: dict[str, DeviceBuffer] | None = None) -> None:
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EdgesegError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = stream if stream is not None else cuda.stream()
        self.events = [cuda.event() for _ in range(4)] if stream is None else []  # a chained slot is timed by its head
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, DeviceBuffer] = {}
        self.owned: list[DeviceBuffer] = []
        self.graph = None
        self.graph_failed = False  # a capture failed once: plain enqueues from then on
        self.next: _Slot | None = None  # the chained engine's slot, on the same stream
        for spec, is_input in specs:
            shape = tuple(int(d) for d in spec.shape)
            if is_input and not self.context.set_input_shape(spec.name, shape):
                raise EdgesegError(f"TensorRT refused shape {'x'.join(map(str, shape))} for input {spec.name!r} "
                                   f"(outside the engine's optimization profile)")
            if shared and spec.name in shared:
                self.device[spec.name] = shared[spec.name]
            else:
                self.host[spec.name] = cuda.pinned(shape, spec.dtype)
                self.device[spec.name] = cuda.malloc(self.host[spec.name].nbytes)
                self.owned.append(self.device[spec.name])
            if not self.context.set_tensor_address(spec.name, self.device[spec.name].ptr):
                raise EdgesegError(f"TensorRT refused the address of tensor {spec.name!r}")

    def release(self, cuda: CudaApi, own_stream: bool = True) -> None:
        if self.graph is not None:
            cuda.destroy_graph(self.graph)
            self.graph = None
        for buffer in self.owned:
            buffer.free()
        for array in self.host.values():
            cuda.free_pinned(array)
        for event in self.events:
            cuda.destroy_event(event)
        if own_stream:
            cuda.destroy_stream(self.stream)
        self.owned, self.host, self.events = [], {}, []


class TensorRTRunner(Runner):
    backend = "tensorrt"
    times_itself = True

    def __init__(self, engine_path: str | Path, *, slots: int = 1, cuda_graph: bool = False,
                 then: str | Path | None = None, settings: dict | None = None,
                 then_settings: dict | None = None) -> None:
        name = f"tensorrt:{Path(engine_path).name}" + (f" + {Path(then).name}" if then else "")
        super().__init__(name)
        self.path, self.slots, self.cuda_graph = Path(engine_path), slots, cuda_graph
        self.then = Path(then) if then else None
        self.engine: trt.ICudaEngine | None = None
        self.then_engine: trt.ICudaEngine | None = None
        self._pool = SlotPool()
        self._specs: list[tuple[TensorSpec, bool]] = []
        self._then_specs: list[tuple[TensorSpec, bool]] = []
        self._device_mib: float | None = None
        self.settings, self.then_settings = dict(settings or {}), dict(then_settings or {})
        self._runtimes: list[trt.Runtime] = []  # kept alive as long as their engines

    def _load(self, path: Path, settings: dict) -> tuple[trt.ICudaEngine, list[tuple[TensorSpec, bool]]]:
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        runtime = new_runtime(trt, logger, settings)
        self._runtimes.append(runtime)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EdgesegError(f"TensorRT cannot load {path} (built for another TensorRT or GPU, or damaged): "
                               f"rebuild it with edgeseg build")
        specs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
            dims = engine.get_tensor_shape(name)
            shape = tuple(int(dims[k]) if dims[k] >= 0 else 1 for k in range(len(dims)))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            specs.append((TensorSpec(name, dtype, shape), is_input))
        return engine, specs

    def activate(self) -> None:
        """Load the engine (and the chained one), then give every slot its context, buffers and stream. A
        chained engine's inputs are bound to the first engine's buffers of the same name (the CRF reads the
        model's ``logits`` and ``image`` in place); only its outputs get buffers of their own."""
        from edgeseg.runtime.build import load_tensorrt

        load_tensorrt()
        self.cuda = get_cuda()
        with self.cuda.context():
            free_before, _ = self.cuda.mem_info()
            self.engine, self._specs = self._load(self.path, self.settings)
            if self.then is not None:
                self.then_engine, self._then_specs = self._load(self.then, self.then_settings)
                check_chain(self.path.name, self._specs, self.then.name, self._then_specs)
            for _ in range(self.slots):
                slot = _Slot(self.engine, self.cuda, self._specs)
                self._pool.add(slot)
                if self.then_engine is not None:
                    shared = {s.name: slot.device[s.name] for s, is_input in self._then_specs if is_input}
                    slot.next = _Slot(self.then_engine, self.cuda, self._then_specs, stream=slot.stream,
                                      shared=shared)
            free_after, _ = self.cuda.mem_info()
        self._device_mib = (free_before - free_after) / 2**20

    def deactivate(self) -> None:
        with self.cuda.context():
            for slot in self._pool.all:
                self.cuda.synchronize(slot.stream)
                if slot.next is not None:
                    slot.next.release(self.cuda, own_stream=False)
                slot.release(self.cuda)
        self._pool.clear()
        self.engine = self.then_engine = None
        self._runtimes.clear()

    def inputs(self) -> list[TensorSpec]:
        return [spec for spec, is_input in self._specs if is_input]

    def outputs(self) -> list[TensorSpec]:
        return [spec for spec, is_input in (self._then_specs or self._specs) if not is_input]

    def device_memory_mib(self) -> float | None:
        return self._device_mib

    def _execute(self, slot: _Slot) -> None:
        """Enqueue the engine (and a chained engine after it) on the slot's stream."""
        handle = self.cuda.stream_handle(slot.stream)
        current: _Slot | None = slot
        while current is not None:
            if not current.context.execute_async_v3(handle):
                raise EdgesegError(f"{self.name}: execute_async_v3 failed")
            current = current.next

    def _enqueue(self, slot: _Slot) -> None:
        if slot.graph is not None:
            self.cuda.launch(slot.graph, slot.stream)
        else:
            self._execute(slot)

    def _capture(self, slot: _Slot) -> None:
        """Record the enqueue into a CUDA graph (after one ordinary run, as TensorRT requires). A failed
        capture is ended and discarded (never stored in the slot) and the slot keeps plain enqueues."""
        try:
            self.cuda.capture_begin(slot.stream)
        except EdgesegError as exc:
            slot.graph_failed = True
            log.warning("%s: no CUDA graph (%s): running with plain enqueues", self.name, exc)
            return
        try:
            self._execute(slot)
            graph = self.cuda.capture_end(slot.stream)
        except EdgesegError as exc:
            self.cuda.abort_capture(slot.stream)
            slot.graph_failed = True
            log.warning("%s: CUDA graph capture failed (%s): running with plain enqueues", self.name, exc)
            return
        slot.graph = graph

    def _result_slot(self, slot: _Slot) -> _Slot:
        """The slot whose outputs are the runner's: the last engine of the chain."""
        while slot.next is not None:
            slot = slot.next
        return slot

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.cuda.context(), self._pool.take() as slot:
            cuda, e = self.cuda, slot.events
            cuda.record(e[0], slot.stream)
            for spec in self.inputs():
                np.copyto(slot.host[spec.name], feed[spec.name])
                cuda.htod(slot.device[spec.name], slot.host[spec.name], slot.stream)
            cuda.record(e[1], slot.stream)
            self._enqueue(slot)
            cuda.record(e[2], slot.stream)
            last = self._result_slot(slot)
            for spec in self.outputs():
                cuda.dtoh(last.host[spec.name], last.device[spec.name], slot.stream)
            cuda.record(e[3], slot.stream)
            cuda.synchronize(slot.stream)
            self.last_stages_ms = {"h2d": cuda.elapsed_ms(e[0], e[1]), "compute": cuda.elapsed_ms(e[1], e[2]),
                                   "d2h": cuda.elapsed_ms(e[2], e[3])}
            self.last_latency_ms = cuda.elapsed_ms(e[0], e[3])
            if self.cuda_graph and slot.graph is None and not slot.graph_failed:
                self._capture(slot)
            return {spec.name: last.host[spec.name].copy() for spec in self.outputs()}


def new_runtime(trt_module: Any, logger: trt.ILogger, settings: dict) -> trt.Runtime:
    """An ``IRuntime`` set up, before it deserializes anything, as ``settings`` (see
    :func:`edgeseg.runtime.engine_plan.runtime_settings`) say: at build time (loading the engine back) and at
    run time alike."""
    runtime = trt_module.Runtime(logger)
    if settings.get("engine_host_code_allowed"):
        runtime.engine_host_code_allowed = True  # a version-compatible engine runs its own lean runtime
    if settings.get("DLA_core") is not None:
        runtime.DLA_core = int(settings["DLA_core"])  # the core a DLA engine runs on; 0 otherwise
    return runtime


def check_chain(first: str, specs: list[tuple[TensorSpec, bool]], then: str,
                then_specs: list[tuple[TensorSpec, bool]]) -> None:
    """A chained engine reads each input from the first engine's tensor of the same name: refuse one that the
    first engine lacks, or has with another dtype or shape (the buffer would be misread)."""
    own = {spec.name: spec for spec, _ in specs}
    for spec, is_input in then_specs:
        if not is_input:
            continue
        theirs = own.get(spec.name)
        if theirs is None:
            raise EdgesegError(f"{then} needs {spec.name}, which {first} does not have (re-export the bundle "
                               f"with --crf)")
        if (theirs.dtype, tuple(theirs.shape)) != (spec.dtype, tuple(spec.shape)):
            raise EdgesegError(f"{then} reads {spec.name} as {spec.dtype} {'x'.join(map(str, spec.shape))}, but "
                               f"{first} has it as {theirs.dtype} {'x'.join(map(str, theirs.shape))} (re-export "
                               f"the bundle with --crf)")
