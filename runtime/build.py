"""``edgeseg build``: a TensorRT engine from a bundle's typed ONNX variant, added to the bundle.

One strongly typed path for TensorRT 10.x and 11.x (fp16 from ``model.fp16.onnx``, int8 from the Q/DQ
``model.int8.onnx``); on TensorRT 10 only, and on request, the implicit INT8 path through an
IInt8EntropyCalibrator2 that reads ``calib.cache`` (or calibrates from ``--calib-data``; see
:mod:`edgeseg.runtime.legacy_calibrator`). Every decision is in :mod:`edgeseg.runtime.engine_plan`; this module
only makes the TensorRT calls.

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
from edgeseg.runtime.engine_plan import BuildOptions, BuildPlan, layer_report, plan_build, runtime_settings
from edgeseg.runtime.legacy_calibrator import CalibrationFeeder, make_calibrator
from edgeseg.runtime.manifest import CalibrationIdentity, CalibrationRecord, EngineRecord
from edgeseg.runtime.tensorrt_runner import new_runtime
from edgeseg.runtime.trt_features import cache_version_number

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


def _add_profile(builder: trt.Builder, config: trt.IBuilderConfig, profile: dict) -> None:
    """The dynamic batch's optimization profile: min / opt / max shape per input."""
    trt_profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        trt_profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(trt_profile) < 0:
        raise EdgesegError(f"TensorRT refused the optimization profile {profile}")


def _deserialize(trt_module: Any, logger: trt.ILogger, serialized: Any, settings: dict) -> trt.ICudaEngine:
    """Load the engine just built, with the runtime set up as :class:`TensorRTRunner` will set it up: an engine
    that cannot be loaded back is never written."""
    engine = new_runtime(trt_module, logger, settings).deserialize_cuda_engine(serialized)
    if engine is None:
        raise EdgesegError("TensorRT built the engine but cannot load it back (see its log above); nothing written")
    return engine


def build_engine(bundle_dir: str | Path, options: BuildOptions, calibration_images: np.ndarray | None = None) -> dict:
    """Build, load back, inspect and add the engine to the bundle; returns the manifest entry and the layer
    summary.

    ``calibration_images`` (uint8 N×H×W×3 at the deploy size) feed the legacy INT8 calibrator when the bundle
    has no ``calib.cache``; the caller reads them (the runtime does not read calibration sources). The order
    of writes keeps a good engine whatever fails: build → load back and inspect → engine file (atomically) →
    timing cache (a failure there is a warning) → layer report → manifest."""
    trt = load_tensorrt()
    cuda = get_cuda()
    with cuda.context():
        return _build(trt, cuda, Path(bundle_dir), options, calibration_images)


def _build(trt: Any, cuda: CudaApi, bundle_dir: Path, options: BuildOptions,
           calibration_images: np.ndarray | None) -> dict:
    gpu = cuda.device_info()
    bundle = open_bundle(bundle_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    plan = plan_build(bundle.files, options, trt_version=trt.__version__, num_dla_cores=builder.num_DLA_cores,
                      gpu_compute_capability=gpu["compute_capability"],
                      calibration=bundle.manifest.calibration, input_size=bundle.input_size,
                      inputs=bundle.manifest.inputs)
    onnx_path = bundle.path(plan.onnx_file)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    _parse(network, logger, onnx_path)
    timing_cache = Path(options.timing_cache) if options.timing_cache else None
    config = _configure(builder, plan, timing_cache)
    if plan.profile is not None:
        _add_profile(builder, config, plan.profile)
    feeder = None
    if options.legacy_calibrator:
        if bundle.takes_depth:
            raise EdgesegError("the legacy INT8 calibrator feeds one input; build an RGB-D model from its Q/DQ "
                               "model.int8.onnx instead")
        if plan.calibration_cache is None and calibration_images is None:
            raise EdgesegError("the legacy calibrator needs calibration images (--calib-data) when the bundle has "
                               "no calib.cache")
        # a cache the plan takes was checked against the manifest's identity; without one TensorRT calibrates
        # and writes calib.cache (a file of that name not in the manifest is never read)
        cache_path = bundle.path(plan.calibration_cache) if plan.calibration_cache else bundle.root / "calib.cache"
        feeder = CalibrationFeeder(cuda, cache_path, None if plan.calibration_cache else calibration_images,
                                   batch=int(bundle.batch), trt_version=trt.__version__,
                                   read_cache=plan.calibration_cache is not None)
        config.int8_calibrator = make_calibrator(trt, feeder)
    log.info("building %s from %s on %s (TensorRT %s)", plan.engine_file, plan.onnx_file, gpu["name"], trt.__version__)
    t0 = time.perf_counter()
    try:
        serialized = builder.build_serialized_network(network, config)
        if feeder is not None:
            feeder.check()
    finally:
        if feeder is not None:
            feeder.free()
    if serialized is None:
        raise EdgesegError(f"TensorRT could not build {plan.engine_file} (see its log above)")
    seconds = time.perf_counter() - t0
    layers_file = plan.engine_file.replace(".engine", ".layers.json")
    record = EngineRecord(tensorrt=trt.__version__, gpu=gpu["name"], compute_capability=gpu["compute_capability"],
                          hardware_compatibility=plan.hardware_level, version_compatible=options.version_compatible,
                          dla_core=plan.dla_core, legacy_calibrator=options.legacy_calibrator,
                          strongly_typed=plan.strongly_typed, built_from=plan.onnx_file,
                          built_from_sha256=sha256_file(onnx_path), build_seconds=round(seconds, 1),
                          opt_level=plan.opt_level, layers=layers_file, profile=_profile_json(plan.profile))
    engine = _deserialize(trt, logger, serialized, runtime_settings(record))
    report = layer_report(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON),
                          dla=plan.dla_core is not None)
    del engine
    with atomic_path(bundle.root / plan.engine_file) as tmp:
        tmp.write_bytes(bytes(serialized))
    if timing_cache is not None:
        _save_timing_cache(config, timing_cache)
    write_text_atomic(bundle.root / layers_file, json.dumps(report, indent=1) + "\n")
    if plan.dla_core is not None:
        record.dla_layers = report["dla_layers"]
        log.info("%d of %d layers run on DLA core %d", len(report["dla_layers"]), len(report["layers"]),
                 plan.dla_core)
    entry = bundle.add_file(plan.engine_file, plan.kind, precision=plan.precision, engine=record)
    bundle.add_file(layers_file, "report")
    if options.legacy_calibrator and plan.calibration_cache is None and (bundle.root / "calib.cache").is_file():
        bundle.add_file("calib.cache", "calibration-cache", precision="int8")
        images = calibration_images if calibration_images is not None else np.zeros(0, np.uint8)
        identity = CalibrationIdentity(  # what the cache TensorRT just wrote belongs to: checked on reuse
            onnx_sha256=bundle.entry(bundle.find("onnx", "fp32") or plan.onnx_file).sha256,
            calibration_sha256=hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
            input_size=list(bundle.input_size), trt_version=cache_version_number(trt.__version__))
        bundle.manifest.calibration = CalibrationRecord("tensorrt-legacy-entropy", int(len(images)), identity)
    bundle.save()
    return {"engine": str(bundle.root / plan.engine_file), "entry": entry.to_dict(), "layers": report}


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Save the builder's timing cache; the engine is already written, so a failure here is a warning."""
    try:
        cache = config.get_timing_cache()
        if cache is None:
            log.warning("no timing cache to save to %s", path)
            return
        with atomic_path(path) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    except Exception as exc:  # noqa: BLE001 - the engine is safe; the cache is an optimisation
        log.warning("could not save the timing cache %s: %s", path, exc)


def _profile_json(profile: dict | None) -> dict | None:
    return None if profile is None else {name: [list(s) for s in shapes] for name, shapes in profile.items()}
