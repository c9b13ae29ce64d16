"""Interop with ``trtexec``, the tool TensorRT users trust: the command equivalent to an ``edgeseg build``, and
a ``trtexec --exportTimes`` file read as one more benchmark row. Pure: no TensorRT needed.

Flag spellings are trtexec's (``samples/common/sampleOptions.cpp`` of TensorRT 10.3 and 11.x): ``--onnx``,
``--saveEngine``, ``--stronglyTyped``, ``--memPoolSize=workspace:<N>M``, ``--builderOptimizationLevel``,
``--timingCacheFile``, ``--useDLACore``, ``--allowGPUFallback``, ``--versionCompatible``,
``--hardwareCompatibilityLevel=ampere+|sameComputeCapability``, ``--min/opt/maxShapes=name:AxBxC,...``,
``--profilingVerbosity=detailed``, and on TensorRT 10 only ``--int8 --fp16 --calib=<cache>``.

``--exportTimes`` writes a JSON list with one object per timed inference: ``startEnqMs``, ``endEnqMs``,
``startH2dMs``, ``endH2dMs``, ``startComputeMs``, ``endComputeMs``, ``startD2hMs``, ``endD2hMs`` (times since
the start of the run) and ``h2dMs``, ``computeMs``, ``d2hMs``, ``latencyMs`` (durations), warm-up excluded.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.engine_plan import BuildOptions, BuildPlan, plan_build
from edgeseg.runtime.stats import latency_stats

HARDWARE_FLAGS = {"AMPERE_PLUS": "ampere+", "SAME_COMPUTE_CAPABILITY": "sameComputeCapability"}
TIME_KEYS = ("startEnqMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs")


def _shapes(profile: dict, which: int) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[which])}" for name, shapes in profile.items())


def trtexec_command(bundle_root: str | Path, plan: BuildPlan, options: BuildOptions) -> list[str]:
    """The ``trtexec`` arguments that build what ``edgeseg build`` builds with ``plan`` (the engine goes to the
    same file name, so the two can be compared with ``edgeseg bench``)."""
    root = Path(bundle_root)
    args = ["trtexec", f"--onnx={root / plan.onnx_file}", f"--saveEngine={root / plan.engine_file}"]
    if plan.strongly_typed:
        args.append("--stronglyTyped")
    else:  # the legacy implicit-INT8 path, TensorRT 10 only
        if plan.calibration_cache is None:
            raise EdgesegError("trtexec calibrates only from a cache: run edgeseg calibrate BUNDLE --int8 first "
                               "(or build with edgeseg build --legacy-calibrator --calib-data SPEC)")
        args += ["--int8", "--fp16", f"--calib={root / plan.calibration_cache}"]
    if plan.workspace_bytes is not None:
        args.append(f"--memPoolSize=workspace:{plan.workspace_bytes // 2**20}M")
    args.append(f"--builderOptimizationLevel={plan.opt_level}")
    args.append("--profilingVerbosity=detailed")
    if options.timing_cache:
        args.append(f"--timingCacheFile={options.timing_cache}")
    if plan.dla_core is not None:
        args.append(f"--useDLACore={plan.dla_core}")
    if "GPU_FALLBACK" in plan.builder_flags:
        args.append("--allowGPUFallback")
    if "VERSION_COMPATIBLE" in plan.builder_flags:
        args.append("--versionCompatible")
    if plan.hardware_level != "NONE":
        args.append(f"--hardwareCompatibilityLevel={HARDWARE_FLAGS[plan.hardware_level]}")
    if plan.profile:
        args += [f"--minShapes={_shapes(plan.profile, 0)}", f"--optShapes={_shapes(plan.profile, 1)}",
                 f"--maxShapes={_shapes(plan.profile, 2)}"]
    return args


def format_command(args: list[str]) -> str:
    """One shell line, quoted where needed."""
    return shlex.join(args)


def build_command(bundle_dir: str | Path, options: BuildOptions) -> str:
    """The trtexec line for ``edgeseg build BUNDLE`` with ``options``, planned without a GPU: the version gates
    are checked against the installed TensorRT when there is one, the DLA core count and the GPU are not."""
    from edgeseg.runtime.backends import backend_missing
    from edgeseg.runtime.bundle import open_bundle

    trt_version = None
    if backend_missing("tensorrt") is None:
        import tensorrt

        trt_version = tensorrt.__version__
    bundle = open_bundle(bundle_dir)
    plan = plan_build(bundle.files, options, trt_version=trt_version, num_dla_cores=None,
                      gpu_compute_capability=None, calibration=bundle.manifest.calibration,
                      input_size=bundle.input_size, inputs=bundle.manifest.inputs)
    return format_command(trtexec_command(bundle.root, plan, options))


def read_times(path: str | Path) -> list[dict]:
    """The per-inference records of a ``trtexec --exportTimes`` file; anything else is one clear error."""
    p = Path(path)
    try:
        records = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgesegError(f"{p} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgesegError(f"{p} is not a trtexec --exportTimes file: {exc}") from None
    if not isinstance(records, list) or not records:
        raise EdgesegError(f"{p} is not a trtexec --exportTimes file (expected a non-empty JSON list)")
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not all(isinstance(record.get(k), (int, float)) and
                                                   np.isfinite(record[k]) for k in TIME_KEYS):
            raise EdgesegError(f"{p}: record {i} lacks {', '.join(TIME_KEYS)} as numbers (a trtexec --exportTimes "
                               f"file has them all)")
    return records


def trtexec_row(path: str | Path, *, batch: int = 1, precision: str = "unknown") -> dict:
    """One benchmark row from a ``trtexec --exportTimes`` file: latency (``latencyMs``: H2D + compute + D2H
    of one inference), the mean of each stage, and throughput as trtexec counts it (inferences × ``batch``
    over the span from the first enqueue to the last D2H end)."""
    records = read_times(path)
    latency = latency_stats([r["latencyMs"] for r in records])
    span_ms = max(r["endD2hMs"] for r in records) - min(r["startEnqMs"] for r in records)
    if span_ms <= 0:
        raise EdgesegError(f"{path}: the records span no time")
    fps = 1e3 * batch * len(records) / span_ms
    stages = {"preprocess": None, "transfer": round(float(np.mean([r["h2dMs"] + r["d2hMs"] for r in records])), 4),
              "inference": round(float(np.mean([r["computeMs"] for r in records])), 4), "postprocess": None}
    p = Path(path)
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in latency.items()}
    rounded["samples"] = [round(float(r["latencyMs"]), 4) for r in records]
    return {"model": p.stem, "artifact": str(p), "file": p.name, "file_mib": None, "backend": "trtexec",
            "precision": precision, "providers": [], "batch": batch, "input_size": [], "frames": "trtexec",
            "load_s": None, "timing": "trtexec --exportTimes", "latency_ms": rounded,
            "end_to_end_ms": rounded, "stages_ms": stages, "throughput": {"fps": round(fps, 2), "streams": 1},
            "end_to_end_fps": round(fps, 2), "memory": {"device_peak_mib": None}, "classes": None, "palette": None,
            "accuracy": None}
