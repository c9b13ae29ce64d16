"""The small CUDA layer the runtime needs, on cuda-python (``cuda.bindings.runtime``) or pycuda.

Device buffers, pinned host buffers, streams, events, async host↔device and device↔device copies, memory
info, CUDA-graph capture. cuda-python is preferred (NVIDIA's samples moved to it, and it has no context stack
to push per thread); pycuda is used when it is the one installed: its driver API needs the device's primary
context current in the calling thread, so every pycuda call, and every block of work a runner does in a thread
(``with cuda.context():``), pushes it there and pops it after. Every CUDA status is checked: a failure is a
:class:`CudaError` naming the call and CUDA's own error name and text.

``get_cuda()`` returns the binding (cached); nothing here touches the GPU at import time.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import threading
from collections.abc import Iterator

import numpy as np

from edgeseg.errors import EdgesegError


class CudaError(EdgesegError):
    """A CUDA call failed (or no CUDA is usable here)."""


class DeviceBuffer:
    def __init__(self, cuda: CudaApi, ptr: int, nbytes: int, owner=None) -> None:
        self.cuda, self.ptr, self.nbytes, self._owner = cuda, int(ptr), nbytes, owner

    def free(self) -> None:
        if self.ptr:
            self.cuda.free_device(self)
            self.ptr = 0


class CudaApi:
    """What the runtime uses; implemented by :class:`CudaPython` and :class:`PyCuda`."""

    name = "none"

    def device_info(self, device: int = 0) -> dict:
        raise NotImplementedError

    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes on the current device."""
        raise NotImplementedError

    def malloc(self, nbytes: int) -> DeviceBuffer:
        raise NotImplementedError

    def free_device(self, buffer: DeviceBuffer) -> None:
        raise NotImplementedError

    def pinned(self, shape, dtype) -> np.ndarray:
        """A page-locked host array (what async copies need to overlap with compute)."""
        raise NotImplementedError

    def free_pinned(self, array: np.ndarray) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Make this binding's CUDA context current in the calling thread for the block (cuda-python's
        runtime API needs nothing; pycuda pushes the primary context)."""
        yield

    def stream(self):
        raise NotImplementedError

    def destroy_stream(self, stream) -> None:
        """Release a stream from :meth:`stream`."""

    def destroy_event(self, event) -> None:
        """Release an event from :meth:`event`."""

    def stream_handle(self, stream) -> int:
        raise NotImplementedError

    def synchronize(self, stream) -> None:
        raise NotImplementedError

    def event(self):
        raise NotImplementedError

    def record(self, event, stream) -> None:
        raise NotImplementedError

    def elapsed_ms(self, start, end) -> float:
        raise NotImplementedError

    def htod(self, dst: DeviceBuffer, src: np.ndarray, stream) -> None:
        raise NotImplementedError

    def dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream) -> None:
        raise NotImplementedError

    def dtod(self, dst: DeviceBuffer, src: DeviceBuffer, nbytes: int, stream) -> None:
        raise NotImplementedError

    def capture_begin(self, stream) -> None:
        """Start recording the work enqueued on ``stream`` into a CUDA graph."""
        raise CudaError(f"CUDA graphs need cuda-python (this binding is {self.name})")

    def capture_end(self, stream):
        """Stop recording; returns the instantiated graph to :meth:`launch`."""
        raise CudaError(f"CUDA graphs need cuda-python (this binding is {self.name})")

    def launch(self, graph, stream) -> None:
        raise CudaError(f"CUDA graphs need cuda-python (this binding is {self.name})")

    def abort_capture(self, stream) -> None:
        """End a capture that failed and discard what it recorded, clearing CUDA's sticky error."""

    def destroy_graph(self, graph) -> None:
        """Release a graph from :meth:`capture_end`."""


def _contiguous(array: np.ndarray, what: str) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise CudaError(f"{what}: the host array must be C-contiguous")
    return array


class CudaPython(CudaApi):
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` on old releases)."""

    name = "cuda-python"

    def __init__(self) -> None:
        try:
            self.rt = importlib.import_module("cuda.bindings.runtime")
        except ImportError:
            self.rt = importlib.import_module("cuda.cudart")
        self._pinned: dict[int, int] = {}
        count = self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if not count:
            raise CudaError("no CUDA device found")

    def check(self, result, call: str):
        """``result`` is cuda-python's (status, *values) tuple: raise on an error, return the value(s)."""
        status, *values = result if isinstance(result, tuple) else (result,)
        if int(status) != 0:
            _, name = self.rt.cudaGetErrorName(status)
            _, text = self.rt.cudaGetErrorString(status)
            raise CudaError(f"{call} failed: {_text(name)}: {_text(text)}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def device_info(self, device: int = 0) -> dict:
        prop = self.check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        return {"name": _text(prop.name), "compute_capability": f"{prop.major}.{prop.minor}",
                "memory_mib": int(prop.totalGlobalMem) // 2**20}

    def mem_info(self) -> tuple[int, int]:
        free, total = self.check(self.rt.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(free), int(total)

    def malloc(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(self, self.check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"), nbytes)

    def free_device(self, buffer: DeviceBuffer) -> None:
        self.check(self.rt.cudaFree(buffer.ptr), "cudaFree")

    def pinned(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self.check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(ptr)
        array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
        self._pinned[array.ctypes.data] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(array.ctypes.data, None)
        if ptr is not None:
            self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def stream(self):
        return self.check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreate")

    def destroy_stream(self, stream) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def destroy_event(self, event) -> None:
        self.check(self.rt.cudaEventDestroy(event), "cudaEventDestroy")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def synchronize(self, stream) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def event(self):
        return self.check(self.rt.cudaEventCreate(), "cudaEventCreate")

    def record(self, event, stream) -> None:
        self.check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def elapsed_ms(self, start, end) -> float:
        self.check(self.rt.cudaEventSynchronize(end), "cudaEventSynchronize")
        return float(self.check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream) -> None:
        kind_enum = getattr(self.rt.cudaMemcpyKind, kind)
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind_enum, stream), f"cudaMemcpyAsync({kind})")

    def htod(self, dst: DeviceBuffer, src: np.ndarray, stream) -> None:
        src = _contiguous(src, "htod")
        _check_size(src.nbytes, dst.nbytes, "htod")
        self._copy(dst.ptr, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream) -> None:
        dst = _contiguous(dst, "dtoh")
        _check_size(dst.nbytes, src.nbytes, "dtoh")
        self._copy(dst.ctypes.data, src.ptr, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def dtod(self, dst: DeviceBuffer, src: DeviceBuffer, nbytes: int, stream) -> None:
        _check_size(nbytes, min(dst.nbytes, src.nbytes), "dtod")
        self._copy(dst.ptr, src.ptr, nbytes, "cudaMemcpyDeviceToDevice", stream)

    def capture_begin(self, stream) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def capture_end(self, stream):
        graph = self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        try:
            return self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            self.check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")  # the executable graph stands alone

    def launch(self, graph, stream) -> None:
        self.check(self.rt.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")

    def abort_capture(self, stream) -> None:
        status, graph = self.rt.cudaStreamEndCapture(stream)
        if int(status) == 0 and graph:
            self.rt.cudaGraphDestroy(graph)
        self.rt.cudaGetLastError()  # a failed capture leaves an error behind for the next call

    def destroy_graph(self, graph) -> None:
        self.check(self.rt.cudaGraphExecDestroy(graph), "cudaGraphExecDestroy")


class PyCuda(CudaApi):
    """pycuda's driver API on device 0's primary context, made current per thread by :meth:`context`
    (``pycuda.autoprimaryctx`` makes it current in the importing thread only, and the pipeline and bench run
    inference in worker threads)."""

    name = "pycuda"

    def __init__(self) -> None:
        self.driver = importlib.import_module("pycuda.driver")
        self._local = threading.local()
        try:
            self.driver.init()
            self.primary = self.driver.Device(0).retain_primary_context()
        except self.driver.Error as exc:
            raise CudaError(f"pycuda cannot use the GPU: {exc}") from exc

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            try:
                self.primary.push()
            except self.driver.Error as exc:
                raise CudaError(f"cannot make the CUDA context current: {exc}") from exc
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self.driver.Context.pop()

    def _call(self, what: str, fn, *args):
        with self.context():
            try:
                return fn(*args)
            except self.driver.Error as exc:
                raise CudaError(f"{what} failed: {exc}") from exc

    def device_info(self, device: int = 0) -> dict:
        d = self.driver.Device(device)
        major, minor = d.compute_capability()
        return {"name": d.name(), "compute_capability": f"{major}.{minor}", "memory_mib": d.total_memory() // 2**20}

    def mem_info(self) -> tuple[int, int]:
        return self._call("mem_get_info", self.driver.mem_get_info)

    def malloc(self, nbytes: int) -> DeviceBuffer:
        allocation = self._call("mem_alloc", self.driver.mem_alloc, max(nbytes, 1))
        return DeviceBuffer(self, int(allocation), nbytes, owner=allocation)

    def free_device(self, buffer: DeviceBuffer) -> None:
        self._call("free", buffer._owner.free)

    def pinned(self, shape, dtype) -> np.ndarray:
        return self._call("pagelocked_empty", self.driver.pagelocked_empty, shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        base = getattr(array, "base", None)
        if base is not None and hasattr(base, "free"):
            self._call("free pinned", base.free)

    def stream(self):
        return self._call("Stream", self.driver.Stream)

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def synchronize(self, stream) -> None:
        self._call("Stream.synchronize", stream.synchronize)

    def event(self):
        return self._call("Event", self.driver.Event)

    def record(self, event, stream) -> None:
        self._call("Event.record", event.record, stream)

    def elapsed_ms(self, start, end) -> float:
        self._call("Event.synchronize", end.synchronize)
        return float(self._call("Event.time_since", end.time_since, start))

    def htod(self, dst: DeviceBuffer, src: np.ndarray, stream) -> None:
        _check_size(_contiguous(src, "htod").nbytes, dst.nbytes, "htod")
        self._call("memcpy_htod_async", self.driver.memcpy_htod_async, dst.ptr, src, stream)

    def dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream) -> None:
        _check_size(_contiguous(dst, "dtoh").nbytes, src.nbytes, "dtoh")
        self._call("memcpy_dtoh_async", self.driver.memcpy_dtoh_async, dst, src.ptr, stream)

    def dtod(self, dst: DeviceBuffer, src: DeviceBuffer, nbytes: int, stream) -> None:
        _check_size(nbytes, min(dst.nbytes, src.nbytes), "dtod")
        self._call("memcpy_dtod_async", self.driver.memcpy_dtod_async, dst.ptr, src.ptr, nbytes, stream)


def _check_size(nbytes: int, capacity: int, what: str) -> None:
    if nbytes > capacity:
        raise CudaError(f"{what}: {nbytes} bytes do not fit a {capacity}-byte buffer")


def _text(value) -> str:
    return value.decode(errors="replace").rstrip("\x00") if isinstance(value, bytes) else str(value)


def installed_bindings() -> list[str]:
    """The CUDA bindings importable here, in the order they are tried."""
    found = []
    if importlib.util.find_spec("cuda") is not None and (
            _has_module("cuda.bindings.runtime") or _has_module("cuda.cudart")):
        found.append("cuda-python")
    if importlib.util.find_spec("pycuda") is not None:
        found.append("pycuda")
    return found


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


_lock = threading.Lock()
_cached: CudaApi | None = None


def get_cuda(prefer: str | None = None) -> CudaApi:
    """The CUDA binding: cuda-python first, else pycuda. A clear :class:`CudaError` when neither works."""
    global _cached
    with _lock:
        if _cached is not None and prefer in (None, _cached.name):
            return _cached
        bindings = installed_bindings()
        if prefer is not None:
            bindings = [b for b in bindings if b == prefer]
        if not bindings:
            raise CudaError("no CUDA binding: pip install cuda-python (or pycuda) on a machine with an NVIDIA GPU")
        errors = []
        for name in bindings:
            try:
                _cached = CudaPython() if name == "cuda-python" else PyCuda()
                return _cached
            except CudaError as exc:
                errors.append(f"{name}: {exc}")
        raise CudaError("CUDA is not usable here (" + "; ".join(errors) + ")")
