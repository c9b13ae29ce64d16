"""The calibration stage on a bundle: FP16 and INT8 variants, the TensorRT cache, and the accuracy gate.

Run by ``edgeseg export --int8/--fp16`` (inside the bundle being written) and by ``edgeseg calibrate BUNDLE``.
Every variant is scored with ONNX Runtime on the same eval set; INT8 over the mIoU budget triggers the
sensitivity search. The manifest records every variant's mIoU and ``miou_drop`` (points), ``sensitivity.json``
every search step.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from edgeseg.calibration.cache import DEFAULT_VERSION, write_cache
from edgeseg.calibration.fp16 import convert_fp16
from edgeseg.calibration.gate import gate_verdict, layer_sensitivity, score_onnx
from edgeseg.calibration.qdq import amax_from_qdq, quantize_qdq, tensor_amax
from edgeseg.calibration.readers import load_calibration_set
from edgeseg.data import is_data_spec
from edgeseg.errors import EdgesegError
from edgeseg.fileio import make_file_readable, write_text_atomic
from edgeseg.metrics import miou_drop_points
from edgeseg.progress import Progress
from edgeseg.runtime.bundle import open_bundle
from edgeseg.runtime.manifest import CalibrationIdentity, CalibrationRecord
from edgeseg.runtime.onnx_metadata import stamp_bundle_file

log = logging.getLogger(__name__)
FILES = {"fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


@dataclass
class CalibrationOptions:
    calib_data: str | None = None
    calib_size: int | None = None
    calib_depth: str | None = None  # depth maps paired by stem with an image-folder calibration set (RGB-D)
    method: str = "percentile"  # measured best: benchmarks/results/int8_methods.json
    target: str = "tensorrt"
    quantizer: str = "onnxruntime"  # or modelopt (NVIDIA Model Optimizer), when installed
    int8: bool = True
    fp16: bool = True
    eval_data: str | None = None
    eval_images: int | None = 50
    max_miou_drop: float = 1.0  # mIoU points
    max_search_steps: int = 8
    sensitivity_images: int = 4
    seed: int = 0
    trt_version: str = DEFAULT_VERSION
    threads: int | None = None

    def __post_init__(self) -> None:
        """Refuse what would silently change the outcome (a NaN budget passes every gate), from the CLI and the
        Python API alike."""
        if not (isinstance(self.max_miou_drop, (int, float)) and math.isfinite(self.max_miou_drop)
                and self.max_miou_drop >= 0):
            raise EdgesegError(f"the mIoU budget must be a finite number of points >= 0, got {self.max_miou_drop}")
        for name in ("calib_size", "eval_images", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise EdgesegError(f"{name} must be a positive whole number, got {value!r}")
        for name in ("max_search_steps", "sensitivity_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise EdgesegError(f"{name} must be 0 or more, got {getattr(self, name)!r}")
        choices = {"method": ("entropy", "percentile", "minmax"), "target": ("tensorrt", "cpu"),
                   "quantizer": ("onnxruntime", "modelopt")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise EdgesegError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


def _eval_source(options: CalibrationOptions, num_classes: int):
    from edgeseg.data import open_dataset

    spec = options.eval_data
    if spec is None and options.calib_data and is_data_spec(options.calib_data):
        spec = options.calib_data  # its val split: held out from the calibration images (train split)
    if spec is None:
        log.warning("no labelled eval set (--eval-data): the accuracy gate cannot run")
        return None
    source = open_dataset(spec, "val")
    if source.num_classes != num_classes:
        raise EdgesegError(f"eval set {spec} has {source.num_classes} classes, the model {num_classes}")
    return source


def calibrate_bundle(root: str | Path, options: CalibrationOptions) -> dict:
    """Add the requested variants to the bundle at ``root`` and gate them; returns the summary the CLI prints."""
    bundle = open_bundle(root)
    fp32_path = bundle.path(bundle.find("onnx", "fp32") or "model.onnx")
    num_classes = bundle.model.num_classes
    if options.int8 and not options.calib_data:
        raise EdgesegError("--int8 needs --calib-data (a data spec, an image folder or a video)")
    # what the graph takes: a --frame-size bundle is calibrated on frames of its size (images stretched to it),
    # placed by the graph exactly as on the camera
    calib = (load_calibration_set(options.calib_data, bundle.feed_size, count=options.calib_size,
                                  seed=options.seed, depth=bundle.takes_depth, depth_dir=options.calib_depth,
                                  mode=bundle.host_resize, bgr=bundle.frame_bgr) if options.int8 else None)
    source = _eval_source(options, num_classes)
    earlier_variants = bundle.manifest.report("variants")
    earlier_fp16 = bundle.find("onnx", "fp16")
    steps = 1 + (options.fp16 or earlier_fp16 is not None) + options.int8
    bar = Progress(steps, "calibrate", log_interval=0)
    variants: dict[str, dict] = {}
    reference = None
    if source is not None:
        variants["fp32"], reference = score_onnx(fp32_path, source, num_classes, max_images=options.eval_images,
                                                 threads=options.threads, mode=bundle.host_resize, bgr=bundle.frame_bgr,
                                                 progress=True)
        variants["fp32"].update(file=fp32_path.name, miou_drop=0.0, label_agreement=1.0)
    bar.update(stage="fp32 scored")

    def score(name: str) -> dict:
        if source is None:
            return {"file": name, "bytes": (bundle.root / name).stat().st_size}
        result, _ = score_onnx(bundle.root / name, source, num_classes, max_images=options.eval_images,
                               threads=options.threads, reference=reference, mode=bundle.host_resize,
                               bgr=bundle.frame_bgr, progress=True)
        return {**result, "file": name, "miou_drop": miou_drop_points(variants["fp32"]["miou"], result["miou"])}

    if options.fp16:
        info = convert_fp16(fp32_path, bundle.root / FILES["fp16"])
        stamp_bundle_file(bundle, FILES["fp16"], precision="fp16")  # before it is scored, sized and hashed
        variants["fp16"] = {**score(FILES["fp16"]), **info}
        bundle.add_file(FILES["fp16"], "onnx", precision="fp16")
        bar.update(stage="fp16")
    elif earlier_fp16 is not None:  # an FP16 variant made before: scored again, so the gate still covers it
        conversion = {k: v for k, v in earlier_variants.get("fp16", {}).items() if k in ("kept_fp32_ops", "nodes")}
        variants["fp16"] = {**score(earlier_fp16), **conversion}
        bar.update(stage="fp16 (kept)")
    search: list[dict] = []
    if options.int8:
        variants["int8"], search = _int8(bundle, fp32_path, calib, options, score)
        bar.update(stage="int8")
    bar.close()
    gate = {"max_miou_drop": options.max_miou_drop, "eval_data": None if source is None else source.name,
            "eval_images": None if source is None else min(len(source), options.eval_images or len(source))}
    if source is not None:
        gate.update(gate_verdict(variants, options.max_miou_drop))
    else:
        gate.update(passed=None)
    bundle.manifest.reports.update(variants=variants, gate=gate)
    bundle.save()
    return {"variants": variants, "gate": gate, "search_steps": len(search)}


def _int8(bundle, fp32_path, calib, options: CalibrationOptions, score) -> tuple[dict, list[dict]]:
    ranges = bundle.root / "calibration.json"
    ranges.unlink(missing_ok=True)  # ranges belong to one calibration set: never reuse a stale one
    int8_name = FILES["int8"]

    def quantize(name: str, exclude: list[str] | None = None) -> dict:
        info = quantize_qdq(fp32_path, bundle.root / name, calib, method=options.method, target=options.target,
                            ranges_cache=ranges, exclude=exclude, quantizer=options.quantizer)
        stamp_bundle_file(bundle, name, precision="int8", target=options.target)  # before it is scored and hashed
        return {**score(name), **info}

    result = quantize(int8_name)
    steps = [{"step": 0, "excluded": [], "miou": result.get("miou"), "miou_drop": result.get("miou_drop")}]
    over = "miou_drop" in result and result["miou_drop"] > options.max_miou_drop
    if over:
        batches = list(calib.feeds(1))[: options.sensitivity_images]
        ranking = layer_sensitivity(fp32_path, bundle.root / int8_name, batches)
        best = result
        for step in range(1, options.max_search_steps + 1):
            exclude = [r["node"] for r in ranking[: 2 ** (step - 1)]]
            trial = quantize("model.int8.search.onnx", exclude)
            steps.append({"step": step, "excluded": exclude, "miou": trial["miou"], "miou_drop": trial["miou_drop"]})
            log.info("sensitivity step %d: %d layers in float, mIoU drop %.2f", step, len(exclude), trial["miou_drop"])
            if trial["miou_drop"] < best["miou_drop"]:
                best = trial
                (bundle.root / "model.int8.search.onnx").replace(bundle.root / int8_name)
            if best["miou_drop"] <= options.max_miou_drop or len(exclude) >= len(ranking):
                break
        (bundle.root / "model.int8.search.onnx").unlink(missing_ok=True)
        result = {**best, "file": int8_name}
        write_text_atomic(bundle.root / "sensitivity.json",
                          json.dumps({"ranking": ranking, "steps": steps}, indent=2) + "\n")
        bundle.add_file("sensitivity.json", "report")
    bundle.add_file(int8_name, "onnx", precision="int8", target=options.target)
    if options.target == "tensorrt":
        amax = tensor_amax(ranges) if ranges.is_file() else amax_from_qdq(bundle.root / int8_name)
        write_cache(bundle.root / "calib.cache", amax, version=options.trt_version)
        bundle.add_file("calib.cache", "calibration-cache", precision="int8")
    if ranges.is_file():
        make_file_readable(ranges)  # onnxruntime writes it 0600
        bundle.add_file("calibration.json", "calibration-ranges")
    identity = CalibrationIdentity(onnx_sha256=bundle.entry(fp32_path.name).sha256,
                                   calibration_sha256=calib.fingerprint(), input_size=list(bundle.input_size),
                                   trt_version=options.trt_version)
    bundle.manifest.calibration = CalibrationRecord(
        method=options.method, images=len(calib.images), identity=identity, target=options.target,
        quantizer=options.quantizer, calib_size=options.calib_size, seed=options.seed, source=calib.source,
        skipped=len(calib.skipped))
    return result, steps

