"""Stand-ins for the ``tensorrt`` module and the CUDA layer, for tests of the calls edgeseg makes (no GPU here).

They record what edgeseg asks of TensorRT (flags, profiles, runtime settings at deserialization, calibrator
batches) and do nothing TensorRT would compute: the tests assert on edgeseg's calls, never on a fake result.
Where TensorRT's behaviour matters to the code under test, the fake mirrors the binding: the calibrator
callbacks run inside ``build_serialized_network`` and an exception in ``get_batch`` reads as "no more batches"
(the binding prints it and returns false), and enum members missing from an older binding are missing here.
"""

from __future__ import annotations

import json
import types
from types import SimpleNamespace

import numpy as np

from edgeseg.runtime.cuda import CudaApi, CudaError, DeviceBuffer


class FakeCuda(CudaApi):
    """A CUDA layer in host memory that records streams, events, graphs and copies."""

    name = "fake"

    def __init__(self, capture_fails: bool = False) -> None:
        self.copies: list[tuple] = []
        self.live = {"buffers": 0, "streams": 0, "events": 0, "graphs": 0, "pinned": 0}
        self.capture_fails, self.aborted, self.launched = capture_fails, 0, 0
        self._next = 1000

    def _id(self) -> int:
        self._next += 1
        return self._next

    def device_info(self, device: int = 0) -> dict:
        return {"name": "Fake GPU", "compute_capability": "8.7", "memory_mib": 1024}

    def mem_info(self) -> tuple[int, int]:
        return 2**30, 2**31

    def malloc(self, nbytes: int) -> DeviceBuffer:
        self.live["buffers"] += 1
        return DeviceBuffer(self, self._id(), nbytes)

    def free_device(self, buffer: DeviceBuffer) -> None:
        self.live["buffers"] -= 1

    def pinned(self, shape, dtype) -> np.ndarray:
        self.live["pinned"] += 1
        return np.zeros(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        self.live["pinned"] -= 1

    def stream(self):
        self.live["streams"] += 1
        return self._id()

    def destroy_stream(self, stream) -> None:
        self.live["streams"] -= 1

    def stream_handle(self, stream) -> int:
        return int(stream)

    def synchronize(self, stream) -> None:
        pass

    def event(self):
        self.live["events"] += 1
        return self._id()

    def destroy_event(self, event) -> None:
        self.live["events"] -= 1

    def record(self, event, stream) -> None:
        pass

    def elapsed_ms(self, start, end) -> float:
        return 0.0

    def htod(self, dst: DeviceBuffer, src: np.ndarray, stream) -> None:
        if src.nbytes > dst.nbytes:
            raise CudaError(f"htod: {src.nbytes} bytes do not fit a {dst.nbytes}-byte buffer")
        self.copies.append(("htod", dst.nbytes, src.dtype.name, src.shape, float(src.sum())))

    def dtoh(self, dst: np.ndarray, src: DeviceBuffer, stream) -> None:
        self.copies.append(("dtoh", src.nbytes, dst.dtype.name, dst.shape))

    def capture_begin(self, stream) -> None:
        pass

    def capture_end(self, stream):
        if self.capture_fails:
            raise CudaError("cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated")
        self.live["graphs"] += 1
        return self._id()

    def abort_capture(self, stream) -> None:
        self.aborted += 1

    def launch(self, graph, stream) -> None:
        self.launched += 1

    def destroy_graph(self, graph) -> None:
        self.live["graphs"] -= 1


def _enum(*names: str) -> SimpleNamespace:
    return SimpleNamespace(**{n: n for n in names})


def make_tensorrt(version: str = "10.13.0", *, dla_cores: int = 0, loadable: bool = True,
                  layers: list | None = None, io: list | None = None, shapes_ok: bool = True,
                  execute_ok: bool = True, timing_cache_fails: bool = False) -> types.ModuleType:
    """A fake ``tensorrt`` module of ``version``; ``trt.calls`` lists what edgeseg did, in order.

    ``loadable``: whether ``deserialize_cuda_engine`` returns an engine; ``layers``: the inspector's layers;
    ``io``: the engine's tensors as (name, numpy dtype, shape, is_input)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple] = []
    trt.calls = calls
    io = io or [("image", "uint8", (1, 8, 12, 3), True), ("labels", "uint8", (1, 8, 12), False)]
    major, minor = (int(x) for x in version.split(".")[:2])
    trt.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=0)
    flags = ["GPU_FALLBACK", "VERSION_COMPATIBLE"] + (["INT8", "FP16"] if major < 11 else [])
    trt.BuilderFlag = _enum(*flags)
    trt.MemoryPoolType = _enum("WORKSPACE")
    trt.ProfilingVerbosity = _enum("DETAILED")
    trt.DeviceType = _enum("GPU", "DLA")
    levels = ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if (major, minor) >= (10, 9) else [])
    trt.HardwareCompatibilityLevel = _enum(*levels)
    trt.LayerInformationFormat = _enum("JSON", "ONELINE")
    trt.TensorIOMode = _enum("INPUT", "OUTPUT")
    trt.nptype = lambda dtype: np.dtype(dtype).type

    class Logger:
        WARNING = 2

        def __init__(self, level=None) -> None:
            pass

    class Parser:
        num_errors = 0

        def __init__(self, network, logger) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse", path.rsplit("/", 1)[-1]))
            return True

    class Profile:
        def set_shape(self, name, low, opt, high) -> None:
            calls.append(("profile", name, tuple(low), tuple(opt), tuple(high)))

    class TimingCache:
        def serialize(self) -> bytes:
            if timing_cache_fails:
                raise RuntimeError("timing cache serialization failed")
            return b"timing"

    class Config:
        def __init__(self) -> None:
            self.int8_calibrator = None
            self.flags: list[str] = []

        def set_memory_pool_limit(self, pool, size) -> None:
            calls.append(("workspace", size))

        def set_flag(self, flag) -> None:
            self.flags.append(flag)
            calls.append(("flag", flag))

        def add_optimization_profile(self, profile) -> int:
            calls.append(("add_profile",))
            return 0

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache()

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            return True

        def get_timing_cache(self) -> TimingCache:
            return TimingCache()

    class Builder:
        num_DLA_cores = dla_cores

        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags: int):
            calls.append(("network", flags))
            return SimpleNamespace()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network, config: Config):
            calibrator = config.int8_calibrator
            if calibrator is not None:  # as TensorRT: the cache first, else batches until there are none
                cache = calibrator.read_calibration_cache()
                calls.append(("calibration_cache", None if cache is None else bytes(cache).split(b"\n")[0]))
                if cache is None:
                    calls.append(("batch_size", calibrator.get_batch_size()))
                    while True:
                        try:  # the binding prints an exception and reads it as the end of the batches
                            pointers = calibrator.get_batch(["image"])
                        except Exception as exc:  # noqa: BLE001
                            calls.append(("get_batch_raised", str(exc)))
                            pointers = None
                        if not pointers:
                            break
                        calls.append(("batch", tuple(pointers)))
                    calibrator.write_calibration_cache(b"TRT-" + str(major * 10000 + minor * 100).encode()
                                                       + b"-EntropyCalibration2\nimage: 3c010a14\n")
            calls.append(("build", tuple(config.flags)))
            return b"serialized plan"

    class Context:
        def set_input_shape(self, name, shape) -> bool:
            calls.append(("set_input_shape", name, tuple(shape)))
            return shapes_ok

        def set_tensor_address(self, name, ptr) -> bool:
            return True

        def execute_async_v3(self, stream) -> bool:
            calls.append(("execute",))
            return execute_ok

    class Engine:
        num_io_tensors = len(io)

        def get_tensor_name(self, i: int) -> str:
            return io[i][0]

        def get_tensor_dtype(self, name: str):
            return next(t[1] for t in io if t[0] == name)

        def get_tensor_shape(self, name: str):
            return next(t[2] for t in io if t[0] == name)

        def get_tensor_mode(self, name: str):
            return "INPUT" if next(t[3] for t in io if t[0] == name) else "OUTPUT"

        def create_execution_context(self) -> Context:
            return Context()

        def create_engine_inspector(self):
            data = json.dumps({"Layers": layers if layers is not None else []})
            return SimpleNamespace(get_engine_information=lambda fmt: data)

    class Runtime:
        def __init__(self, logger) -> None:
            self.engine_host_code_allowed = False
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize", {"engine_host_code_allowed": self.engine_host_code_allowed,
                                          "DLA_core": self.DLA_core}))
            return Engine() if loadable else None

    class Calibrator:
        def __init__(self) -> None:
            pass

    trt.Logger, trt.OnnxParser, trt.Builder, trt.Runtime = Logger, Parser, Builder, Runtime
    if major < 11:
        trt.IInt8EntropyCalibrator2 = Calibrator
    return trt


def install(monkeypatch, trt: types.ModuleType, cuda: CudaApi) -> None:
    """Make ``import tensorrt`` give ``trt`` and the runtime's CUDA layer be ``cuda``."""
    import sys

    from edgeseg.runtime import build, tensorrt_runner

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(build, "backend_missing", lambda name: None)
    monkeypatch.setattr(build, "get_cuda", lambda prefer=None: cuda)
    monkeypatch.setattr(tensorrt_runner, "get_cuda", lambda prefer=None: cuda)
