"""Every decision about a TensorRT engine that is not a TensorRT call: pure functions, tested without a GPU.

* :func:`plan_build` — which ONNX variant to parse, strongly typed or not, which builder flags, DLA placement,
  hardware / version compatibility, workspace, optimisation level, file names; and the refusals (a flag the
  TensorRT version lacks, DLA with fp32, hardware compatibility with DLA...).
* :func:`check_cache_identity` — ``calib.cache`` is taken only for the fp32 model and deploy size it was
  calibrated for (a stale cache is refused, never reused).
* :func:`check_engine_identity` — an engine runs only with the TensorRT version and the GPU it was built for
  (unless built version- or hardware-compatible); otherwise a clear error with the command that rebuilds it.
* :func:`layer_report` — per-layer precision and device from the engine inspector's JSON.
* :func:`batch_profile` — the optimization profile (min / opt / max shapes) of a dynamic-batch bundle.
* :func:`runtime_settings` — what the ``IRuntime`` must be told before it deserializes an engine (host code
  allowed for a version-compatible engine, the DLA core of a DLA engine), the same at build and at run time.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import PRECISIONS
from edgeseg.runtime.bundle import find_file
from edgeseg.runtime.manifest import CalibrationRecord, EngineRecord, FileEntry, TensorSpec
from edgeseg.runtime.trt_features import has_feature, require_feature

log = logging.getLogger(__name__)

HARDWARE_LEVELS = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
HARDWARE_FEATURES = {"ampere+": "hardware_compatibility_ampere_plus", "same-cc": "hardware_compatibility_same_cc"}
MAX_OPT_LEVEL = 5


class EngineMismatchError(EdgesegError):
    """An engine built for another GPU or TensorRT version."""


@dataclass
class BuildOptions:
    precision: str = "fp16"
    workspace_mb: int | None = None
    opt_level: int = 3
    timing_cache: str | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: str = "none"  # none | ampere+ | same-cc
    legacy_calibrator: bool = False  # TensorRT 10 only: implicit INT8 from the fp32 ONNX and calib.cache
    calib_data: str | None = None  # for the legacy calibrator when the bundle has no calib.cache
    crf: bool = False  # build the standalone ConvCRF (crf.onnx, fp32) instead of the model
    max_batch: int = 8  # dynamic-batch bundles: the profile's largest batch
    opt_batch: int | None = None  # dynamic-batch bundles: the batch TensorRT tunes for (default max_batch)


Shape = tuple[int, ...]


@dataclass
class BuildPlan:
    onnx_file: str
    precision: str
    strongly_typed: bool
    builder_flags: list[str] = field(default_factory=list)
    hardware_level: str = "NONE"
    dla_core: int | None = None
    workspace_bytes: int | None = None
    opt_level: int = 3
    calibration_cache: str | None = None
    engine_file: str = "model.engine"
    kind: str = "engine"  # or "crf-engine"
    profile: dict[str, tuple[Shape, Shape, Shape]] | None = None  # dynamic batch: name -> (min, opt, max)
    version_compatible: bool = False  # the runtime must allow the engine's host code to load it


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:4])


def compute_capability(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def check_cache_identity(files: dict[str, FileEntry], calibration: CalibrationRecord | None,
                         input_size: Sequence[int] | None) -> None:
    """Refuse a ``calib.cache`` made for another ONNX file or deploy size (a stale cache is never reused).

    ``files`` is the manifest's file list, ``calibration`` its ``calibration`` section (whose ``identity`` the
    calibration recorded: the fp32 model's sha256 and the deploy size) and ``input_size`` the bundle's (H, W).
    """
    if calibration is None:
        raise EdgesegError("calib.cache: no calibration recorded for it in the manifest; run edgeseg calibrate "
                           "BUNDLE --int8 --calib-data SPEC")
    fp32 = find_file(files, "onnx", "fp32")
    sha256 = files[fp32].sha256 if fp32 is not None else None
    size = None if input_size is None else [int(v) for v in input_size]
    identity = calibration.identity
    if sha256 is None or identity.onnx_sha256 != sha256 or identity.input_size != size:
        raise EdgesegError("calib.cache was made for another model or input size; rerun edgeseg calibrate "
                           "BUNDLE --int8 --calib-data SPEC")


def plan_build(files: dict[str, FileEntry], options: BuildOptions, *, trt_version: str | None,
               num_dla_cores: int | None, gpu_compute_capability: str | None,
               calibration: CalibrationRecord | None = None, input_size: Sequence[int] | None = None,
               inputs: Sequence[TensorSpec] | None = None) -> BuildPlan:
    """The build for a bundle whose manifest lists ``files`` (name → entry), or a clear refusal.

    ``calibration`` (the manifest's section) and ``input_size`` (the bundle's deploy size) vouch for the
    ``calib.cache`` the legacy calibrator takes: see :func:`check_cache_identity`. ``inputs`` (the manifest's
    tensor specs) give a dynamic-batch bundle its optimization profile. ``None`` for the TensorRT version, the DLA
    core count or the compute capability (``--print-trtexec`` on a machine without TensorRT) skips the checks
    that need it."""
    plan = _plan_build(files, options, trt_version=trt_version, num_dla_cores=num_dla_cores,
                       gpu_compute_capability=gpu_compute_capability, calibration=calibration,
                       input_size=input_size)
    plan.profile = batch_profile(inputs or [], options.max_batch, options.opt_batch)
    if plan.profile is not None and options.legacy_calibrator:
        raise EdgesegError("--legacy-calibrator calibrates one fixed batch: build a dynamic-batch bundle from its "
                           "Q/DQ model.int8.onnx instead")
    plan.version_compatible = options.version_compatible
    return plan


def _plan_build(files: dict[str, FileEntry], options: BuildOptions, *, trt_version: str | None,
                num_dla_cores: int | None, gpu_compute_capability: str | None, calibration: CalibrationRecord | None,
                input_size: Sequence[int] | None) -> BuildPlan:
    o = options
    if o.precision not in PRECISIONS:
        raise EdgesegError(f"--precision must be one of {', '.join(PRECISIONS)}, got {o.precision!r}")
    if not 0 <= o.opt_level <= MAX_OPT_LEVEL:
        raise EdgesegError(f"--opt-level must be 0..{MAX_OPT_LEVEL}, got {o.opt_level}")
    if o.workspace_mb is not None and o.workspace_mb < 1:
        raise EdgesegError("--workspace must be at least 1 MB")
    if o.hardware_compatibility not in HARDWARE_LEVELS:
        raise EdgesegError(f"--hardware-compatibility must be one of {', '.join(HARDWARE_LEVELS)}")
    if trt_version is not None and version_tuple(trt_version)[0] < 10:
        raise EdgesegError(f"TensorRT {trt_version} is too old: edgeseg builds with TensorRT 10.x or 11.x")

    def find(kind: str, precision: str) -> str | None:
        return find_file(files, kind, precision)

    flags: list[str] = []
    cache = None
    if o.crf:
        return _plan_crf(o, find("crf", "fp32"), trt_version)
    if o.legacy_calibrator:
        if o.precision != "int8":
            raise EdgesegError("--legacy-calibrator is for --precision int8")
        if trt_version is not None and not has_feature("legacy_calibrator", trt_version):
            raise EdgesegError(f"TensorRT {trt_version} removed the INT8 calibrators; build the Q/DQ model "
                               f"(model.int8.onnx) without --legacy-calibrator")
        onnx_file, strongly_typed = find("onnx", "fp32"), False
        flags += ["INT8", "FP16"]  # layers INT8 cannot take fall back to FP16, as trtexec --int8 --fp16
        cache = find("calibration-cache", "int8")
        if cache is None and not o.calib_data:
            raise EdgesegError("the bundle has no calib.cache: give --calib-data for the legacy calibrator, or "
                               "run edgeseg calibrate BUNDLE --int8 first")
        if cache is not None:
            check_cache_identity(files, calibration, input_size)
    else:
        onnx_file, strongly_typed = find("onnx", o.precision), True
        if onnx_file is None:
            raise EdgesegError(f"the bundle has no {o.precision} ONNX model: add it with edgeseg calibrate BUNDLE "
                               f"--{o.precision} --calib-data SPEC" if o.precision != "fp32" else
                               "the bundle has no fp32 ONNX model (model.onnx)")
        if (files[onnx_file].target or "tensorrt") != "tensorrt":
            raise EdgesegError(f"{onnx_file} was quantized for --int8-target {files[onnx_file].target} (uint8, "
                               f"asymmetric), which TensorRT cannot parse: rerun edgeseg calibrate BUNDLE "
                               f"--int8-target tensorrt")
    if onnx_file is None:
        raise EdgesegError("the bundle has no fp32 ONNX model (model.onnx)")
    if o.dla_core is not None:
        if num_dla_cores == 0:
            raise EdgesegError("this GPU has no DLA cores (DLA exists on Jetson Xavier / Orin)")
        if num_dla_cores is not None and not 0 <= o.dla_core < num_dla_cores:
            raise EdgesegError(f"--dla {o.dla_core}: this device has DLA cores 0..{num_dla_cores - 1}")
        if o.precision == "fp32":
            raise EdgesegError("DLA runs fp16 or int8 only: use --precision fp16 or int8 with --dla")
        if o.hardware_compatibility != "none":
            raise EdgesegError("hardware compatibility cannot be combined with DLA")
        if not o.gpu_fallback:  # every deploy graph has layers DLA cannot run (UINT8 I/O, Cast, ArgMax/TopK)
            log.info("--dla %d: layers DLA cannot run (UINT8 I/O, Cast, ArgMax) go to the GPU: implying "
                     "--gpu-fallback", o.dla_core)
        flags.append("GPU_FALLBACK")
    elif o.gpu_fallback:
        raise EdgesegError("--gpu-fallback only means something with --dla")
    if o.hardware_compatibility != "none":
        _require(HARDWARE_FEATURES[o.hardware_compatibility], trt_version)
    if o.version_compatible:
        _require("version_compatible", trt_version)
    if (o.hardware_compatibility == "ampere+" and gpu_compute_capability is not None
            and compute_capability(gpu_compute_capability) < (8, 0)):
        raise EdgesegError(f"--hardware-compatibility ampere+ needs an Ampere or newer GPU to build on "
                           f"(this one is compute {gpu_compute_capability})")
    if o.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    suffix = f".dla{o.dla_core}" if o.dla_core is not None else ""
    return BuildPlan(onnx_file=onnx_file, precision=o.precision, strongly_typed=strongly_typed, builder_flags=flags,
                     hardware_level=HARDWARE_LEVELS[o.hardware_compatibility], dla_core=o.dla_core,
                     workspace_bytes=None if o.workspace_mb is None else o.workspace_mb * 2**20,
                     opt_level=o.opt_level, calibration_cache=cache,
                     engine_file=f"model.{o.precision}{suffix}{'.legacy' if o.legacy_calibrator else ''}.engine")


def _require(feature: str, trt_version: str | None) -> None:
    if trt_version is not None:
        require_feature(feature, trt_version)


def _plan_crf(o: BuildOptions, onnx_file: str | None, trt_version: str | None) -> BuildPlan:
    """The ConvCRF engine: crf.onnx is an fp32 graph and is built strongly typed, so fp32 whatever the model's
    precision (its cost is memory traffic more than arithmetic)."""
    if onnx_file is None:
        raise EdgesegError("the bundle has no crf.onnx: re-export it with edgeseg export --crf")
    if o.legacy_calibrator or o.dla_core is not None or o.gpu_fallback:
        raise EdgesegError("--crf builds the fp32 CRF graph on the GPU: no --legacy-calibrator, --dla or "
                           "--gpu-fallback")
    flags = ["VERSION_COMPATIBLE"] if o.version_compatible else []
    if o.hardware_compatibility != "none":
        _require(HARDWARE_FEATURES[o.hardware_compatibility], trt_version)
    return BuildPlan(onnx_file=onnx_file, precision="fp32", strongly_typed=True, builder_flags=flags,
                     hardware_level=HARDWARE_LEVELS[o.hardware_compatibility],
                     workspace_bytes=None if o.workspace_mb is None else o.workspace_mb * 2**20,
                     opt_level=o.opt_level, engine_file="crf.fp32.engine", kind="crf-engine")


def rebuild_command(bundle: str, entry: FileEntry) -> str:
    if entry.kind == "crf-engine":
        return f"edgeseg build {bundle} --crf"
    parts = [f"edgeseg build {bundle} --precision {entry.precision or 'fp16'}"]
    record = entry.engine
    if record is not None and record.dla_core is not None:
        parts.append(f"--dla {record.dla_core}")
    if record is not None and record.legacy_calibrator:
        parts.append("--legacy-calibrator")
    return " ".join(parts)


def check_engine_identity(name: str, entry: FileEntry, *, trt_version: str, gpu_name: str, gpu_cc: str,
                          bundle: str) -> list[str]:
    """Refuse an engine built for another TensorRT or GPU; returns warnings (same compute capability but a
    different GPU model: it runs, possibly slower than an engine built here)."""
    record = entry.engine
    if record is None:
        raise EngineMismatchError(f"{name}: the manifest does not say which TensorRT and GPU built it. Rebuild "
                                  f"it on this machine: {rebuild_command(bundle, entry)}")
    built_version, built_cc, built_gpu = record.tensorrt, record.compute_capability, record.gpu
    problems = []
    if record.version_compatible:
        if version_tuple(trt_version) < version_tuple(built_version):
            problems.append(f"TensorRT {trt_version} is older than the {built_version} it was built with")
    elif version_tuple(trt_version)[:3] != version_tuple(built_version)[:3]:
        problems.append(f"it was built with TensorRT {built_version}, this is TensorRT {trt_version}")
    level = record.hardware_compatibility
    if level == "AMPERE_PLUS":
        if compute_capability(gpu_cc) < (8, 0):
            problems.append(f"it needs an Ampere or newer GPU, this is {gpu_name} (compute {gpu_cc})")
    elif compute_capability(gpu_cc) != compute_capability(built_cc):
        problems.append(f"it was built for {built_gpu} (compute {built_cc}), this is {gpu_name} (compute {gpu_cc})")
    if problems:
        raise EngineMismatchError(f"{name} cannot run here: {'; '.join(problems)}. Rebuild it on this machine: "
                                  f"{rebuild_command(bundle, entry)}")
    if level == "NONE" and built_gpu != gpu_name:
        return [f"{name} was built on {built_gpu}; it runs on {gpu_name} (same compute capability), but an engine "
                f"built here may be faster"]
    return []


def batch_profile(inputs: Sequence[TensorSpec], max_batch: int = 8,
                  opt_batch: int | None = None) -> dict[str, tuple[Shape, Shape, Shape]] | None:
    """The optimization profile of a dynamic-batch bundle: each input (the manifest's ``inputs`` specs, whose
    first dimension is the string ``"batch"`` when it is dynamic) from batch 1 (min) through ``opt_batch``
    (default ``max_batch``) to ``max_batch``; None for a static batch (no profile needed)."""
    if not any(isinstance(spec.shape[0], str) for spec in inputs if spec.shape):
        return None
    opt = max_batch if opt_batch is None else opt_batch
    if not (isinstance(max_batch, int) and max_batch >= 1 and isinstance(opt, int) and 1 <= opt <= max_batch):
        raise EdgesegError(f"a dynamic batch needs 1 <= --opt-batch <= --max-batch, got {opt} and {max_batch}")
    profile = {}
    for spec in inputs:
        rest = tuple(int(d) for d in spec.shape[1:])
        profile[spec.name] = ((1, *rest), (opt, *rest), (max_batch, *rest))
    return profile


def runtime_settings(record: EngineRecord | None) -> dict:
    """What an ``IRuntime`` must be set to before it deserializes the engine ``record`` (a manifest entry's build
    facts) describes: ``engine_host_code_allowed`` for a version-compatible engine (it carries its own lean
    runtime, which TensorRT refuses to load otherwise) and ``DLA_core`` for an engine built for a DLA core."""
    settings: dict = {}
    if record is not None and record.version_compatible:
        settings["engine_host_code_allowed"] = True
    if record is not None and record.dla_core is not None:
        settings["DLA_core"] = int(record.dla_core)
    return settings


def layer_report(inspector_json: str, dla: bool = False) -> dict:
    """Per-layer name, type, precision, output types and device from ``IEngineInspector.get_engine_information
    (JSON)`` (built with detailed profiling verbosity), counts per precision and device, and the names of the
    layers that run on DLA.

    Every input and output tensor is read: TensorRT 10 describes each as ``Format/Datatype`` ("Row major linear
    FP16 format"), TensorRT 11 as separate ``Format`` and ``Datatype`` fields. A layer's precision is the
    narrowest float or int8 type among its tensors (an INT8 convolution whose fused output is FP32 is INT8).
    ``dla``: the engine was built for a DLA core, where TensorRT shows each DLA subgraph as one
    ``{ForeignNode[...]}`` layer."""
    try:
        info = json.loads(inspector_json)
    except json.JSONDecodeError as exc:
        raise EdgesegError(f"unreadable engine inspector output: {exc}") from exc
    layers: list[dict] = []
    for layer in info.get("Layers", []) if isinstance(info, dict) else []:
        if isinstance(layer, str):  # without detailed verbosity TensorRT lists names only
            layers.append({"name": layer, "type": None, "precision": None, "outputs": [], "device": None})
            continue
        name, kind = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        outputs = [_tensor_type(t) for t in layer.get("Outputs") or []]
        inputs = [_tensor_type(t) for t in layer.get("Inputs") or []]
        ranked = sorted((t for t in inputs + outputs if t in _COMPUTE_RANK), key=_COMPUTE_RANK.__getitem__)
        precision = ranked[0] if ranked else next((t for t in outputs if t), None)
        precision = precision or _precision_of(str(layer.get("Precision", "")))
        on_dla = "dla" in kind.lower() or (dla and name.startswith("{ForeignNode[") and kind.lower() != "myelin")
        layers.append({"name": name, "type": kind, "precision": precision, "outputs": outputs,
                       "device": "DLA" if on_dla else "GPU"})
    return {"layers": layers, "by_precision": dict(Counter(str(x["precision"]) for x in layers)),
            "by_device": dict(Counter(str(x["device"]) for x in layers)),
            "dla_layers": [x["name"] for x in layers if x["device"] == "DLA"]}


_COMPUTE_RANK = {"fp8": 0, "int8": 1, "fp16": 2, "bf16": 2, "fp32": 3}  # narrowest first


def _tensor_type(tensor) -> str | None:
    if not isinstance(tensor, dict):
        return None
    text = tensor.get("Datatype") or tensor.get("Format/Datatype") or ""
    return _precision_of(str(text))


def _precision_of(text: str) -> str | None:
    t = text.lower()
    for key, name in (("uint8", "uint8"), ("int8", "int8"), ("fp8", "fp8"), ("bf16", "bf16"), ("half", "fp16"),
                      ("fp16", "fp16"), ("float", "fp32"), ("fp32", "fp32"), ("int32", "int32"),
                      ("int64", "int64"), ("bool", "bool")):
        if key in t:
            return name
    return None
