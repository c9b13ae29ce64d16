"""``edgeseg build``: a TensorRT engine from a bundle's typed ONNX variant, added to the bundle.

One strongly typed path for TensorRT 10.x and 11.x (fp16 from ``model.fp16.onnx``, int8 from the Q/DQ
``model.int8.onnx``); on TensorRT 10 only, and on request, the implicit INT8 path through an
IInt8EntropyCalibrator2 that reads ``calib.cache`` (or calibrates from ``--calib-data``). Every decision is in
:mod:`edgeseg.runtime.engine_plan`; this module only makes the TensorRT calls.

Written against the TensorRT 10.x Python API (type-checked with ``tensorrt-stubs``); not yet run on a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path, write_text_atomic
from edgeseg.runtime.backends import backend_missing
from edgeseg.runtime.bundle import open_bundle, sha256_file
from edgeseg.runtime.cuda import CudaApi, get_cuda
from edgeseg.runtime.engine_plan import BuildOptions, BuildPlan, layer_report, plan_build
from edgeseg.runtime.manifest import CalibrationIdentity, CalibrationRecord, EngineRecord

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


def load_tensorrt() -> Any:
    """The ``tensorrt`` module, or a clear error saying why it cannot run here (the backends table's probe)."""
    reason = backend_missing("tensorrt")
    if reason is not None:
        raise EdgesegError(f"TensorRT cannot run here: {reason}")
    import tensorrt

    return tensorrt


def _parse(network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path) -> None:
    import tensorrt as trt

    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgesegError(f"TensorRT cannot parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}"
                           + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def _calibrator(cuda: CudaApi, cache_path: Path, images: np.ndarray | None) -> trt.IInt8EntropyCalibrator2:
    """An IInt8EntropyCalibrator2: TensorRT reads ``cache_path`` when it exists and only calibrates (from
    ``images``, uint8 N×H×W×3 at the deploy size) when it does not."""
    import tensorrt as trt

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.images, self.index = images, 0
            self.stream = cuda.stream()
            self.buffer = cuda.malloc(images[0:1].nbytes) if images is not None else None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:
            if self.images is None or self.buffer is None or self.index >= len(self.images):
                return []  # no more batches (TensorRT takes [] or None)
            cuda.htod(self.buffer, np.ascontiguousarray(self.images[self.index:self.index + 1]), self.stream)
            cuda.synchronize(self.stream)
            self.index += 1
            return [self.buffer.ptr]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(cache_path) as tmp:
                tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()


def _configure(builder: trt.Builder, plan: BuildPlan, timing_cache: Path | None) -> trt.IBuilderConfig:
    import tensorrt as trt

    config = builder.create_builder_config()
    if plan.workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.opt_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, plan.hardware_level)
    if timing_cache is not None:
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, False):
            log.warning("%s does not match this GPU / TensorRT: building without it", timing_cache)
    return config


def build_engine(bundle_dir: str | Path, options: BuildOptions, calibration_images: np.ndarray | None = None) -> dict:
    """Build, inspect and add the engine to the bundle; returns the manifest entry and the layer summary.

    ``calibration_images`` (uint8 N×H×W×3 at the deploy size) feed the legacy INT8 calibrator when the bundle
    has no ``calib.cache``; the caller reads them (the runtime does not read calibration sources)."""
    load_tensorrt()
    import tensorrt as trt

    cuda = get_cuda()
    gpu = cuda.device_info()
    bundle = open_bundle(bundle_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    plan = plan_build(bundle.files, options, trt_version=trt.__version__, num_dla_cores=builder.num_DLA_cores,
                      gpu_compute_capability=gpu["compute_capability"],
                      calibration=bundle.manifest.calibration, input_size=bundle.input_size)
    onnx_path = bundle.path(plan.onnx_file)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    _parse(network, logger, onnx_path)
    timing_cache = Path(options.timing_cache) if options.timing_cache else None
    config = _configure(builder, plan, timing_cache)
    if options.legacy_calibrator:
        if bundle.takes_depth:
            raise EdgesegError("the legacy INT8 calibrator feeds one input; build an RGB-D model from its Q/DQ "
                               "model.int8.onnx instead")
        # a cache the plan takes is checked against its sha256 too; without one TensorRT writes calib.cache
        cache_path = bundle.path(plan.calibration_cache) if plan.calibration_cache else bundle.root / "calib.cache"
        if plan.calibration_cache is None and calibration_images is None:
            raise EdgesegError("the legacy calibrator needs calibration images (--calib-data) when the bundle has "
                               "no calib.cache")
        images = calibration_images if plan.calibration_cache is None else None
        config.int8_calibrator = _calibrator(cuda, cache_path, images)
    log.info("building %s from %s on %s (TensorRT %s)", plan.engine_file, plan.onnx_file, gpu["name"], trt.__version__)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgesegError(f"TensorRT could not build {plan.engine_file} (see its log above)")
    seconds = time.perf_counter() - t0
    if timing_cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    with atomic_path(bundle.root / plan.engine_file) as tmp:
        tmp.write_bytes(bytes(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    report = layer_report(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    layers_file = plan.engine_file.replace(".engine", ".layers.json")
    write_text_atomic(bundle.root / layers_file, json.dumps(report, indent=1) + "\n")
    record = EngineRecord(tensorrt=trt.__version__, gpu=gpu["name"], compute_capability=gpu["compute_capability"],
                          hardware_compatibility=plan.hardware_level, version_compatible=options.version_compatible,
                          dla_core=plan.dla_core, legacy_calibrator=options.legacy_calibrator,
                          strongly_typed=plan.strongly_typed, built_from=plan.onnx_file,
                          built_from_sha256=sha256_file(onnx_path), build_seconds=round(seconds, 1),
                          opt_level=plan.opt_level, layers=layers_file)
    entry = bundle.add_file(plan.engine_file, plan.kind, precision=plan.precision, engine=record)
    bundle.add_file(layers_file, "report")
    if options.legacy_calibrator and plan.calibration_cache is None and (bundle.root / "calib.cache").is_file():
        bundle.add_file("calib.cache", "calibration-cache", precision="int8")
        images = calibration_images if calibration_images is not None else np.zeros(0, np.uint8)
        identity = CalibrationIdentity(  # what the cache TensorRT just wrote belongs to: checked on reuse
            onnx_sha256=bundle.entry(bundle.find("onnx", "fp32") or plan.onnx_file).sha256,
            calibration_sha256=hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
            input_size=list(bundle.input_size), trt_version=trt.__version__)
        bundle.manifest.calibration = CalibrationRecord("tensorrt-legacy-entropy", int(len(images)), identity)
    bundle.save()
    return {"engine": str(bundle.root / plan.engine_file), "entry": entry.to_dict(), "layers": report}
