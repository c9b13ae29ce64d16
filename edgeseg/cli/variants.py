"""The precision-variant flags, options and closing table shared by ``edgeseg export`` and ``edgeseg calibrate``
(command modules do not import each other)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edgeseg.cli.args import non_negative_number, positive_int

if TYPE_CHECKING:
    from edgeseg.runtime.manifest import Manifest


def add_calibration_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The precision-variant flags shared by ``export`` and ``calibrate``."""
    group = parser.add_argument_group("precision variants and accuracy gate")
    if not required:
        group.add_argument("--int8", action="store_true", help="add model.int8.onnx (Q/DQ) and calib.cache")
        group.add_argument("--fp16", action="store_true", help="add model.fp16.onnx")
    group.add_argument("--calib-data", required=required,
                       help="calibration images: a data spec, an image folder, or a video file")
    group.add_argument("--calib-size", type=positive_int, default=64, help="calibration images (default 64)")
    group.add_argument("--calib-depth", metavar="DIR",
                       help="RGB-D models: depth maps (16-bit PNG mm or .npy m) paired by stem with a "
                            "calibration image folder")
    group.add_argument("--calib-method", choices=("entropy", "percentile", "minmax"), default="percentile",
                       help="activation ranges: percentile (99.999th, default: the smallest INT8 drop measured in "
                            "benchmarks/results/int8_methods.json), entropy (TensorRT's KL, 2048 bins) or minmax")
    group.add_argument("--int8-target", choices=("tensorrt", "cpu"), default="tensorrt",
                       help="Q/DQ layout: symmetric int8 for TensorRT, or uint8 activations for ONNX Runtime CPUs")
    group.add_argument("--trt-version", default="10.3", metavar="X.Y[.Z]",
                       help="the TensorRT that will read calib.cache (its header names the version; default 10.3, "
                            "JetPack 6); edgeseg build rewrites it for the TensorRT installed there")
    group.add_argument("--quantizer", choices=("onnxruntime", "modelopt"), default="onnxruntime",
                       help="Q/DQ tool: onnxruntime.quantization, or NVIDIA Model Optimizer when installed")
    group.add_argument("--eval-data", help="labelled eval set for the gate (default: the calibration dataset's val)")
    group.add_argument("--eval-images", type=positive_int, default=50, help="eval images for the gate (default 50)")
    group.add_argument("--max-miou-drop", type=non_negative_number, default=1.0,
                       help="mIoU budget in points (default 1.0)")
    group.add_argument("--max-search-steps", type=positive_int, default=8,
                       help="sensitivity search steps (layers left in float double each step)")


def calibration_options(args: argparse.Namespace, int8: bool, fp16: bool):
    from edgeseg.calibration.pipeline import CalibrationOptions
    from edgeseg.runtime.trt_features import cache_version_number

    return CalibrationOptions(calib_data=args.calib_data, calib_size=args.calib_size, calib_depth=args.calib_depth,
                              method=args.calib_method,
                              target=args.int8_target, quantizer=args.quantizer, int8=int8, fp16=fp16,
                              eval_data=args.eval_data,
                              eval_images=args.eval_images, max_miou_drop=args.max_miou_drop,
                              max_search_steps=args.max_search_steps,
                              trt_version=cache_version_number(args.trt_version))


def variants_table(manifest: Manifest) -> tuple[str, bool]:
    """The closing table (variant, size, mIoU, drop, agreement) and whether the gate passed."""
    from edgeseg.texttable import render_table

    rows = []
    for name, v in manifest.report("variants").items():
        miou = f"{100 * v['miou']:.2f}" if "miou" in v else "-"
        drop = f"{v['miou_drop']:.2f}" if "miou_drop" in v else "-"
        agree = f"{100 * v['label_agreement']:.2f}%" if "label_agreement" in v else "-"
        rows.append((name, v["file"], f"{v['bytes'] / 2**20:.1f}", miou, drop, agree))
    lines = [render_table(("variant", "file", "MB", "mIoU", "drop", "agreement"), rows)]
    gate = manifest.report("gate")
    passed = gate.get("passed")
    verdict = {True: "PASSED", False: "FAILED", None: "NOT GATED (no labelled eval set)"}[passed]
    lines.append(f"gate: mIoU drop <= {gate.get('max_miou_drop')} points on {gate.get('eval_data')} "
                 f"({gate.get('eval_images')} images): {verdict}")
    return "\n".join(lines), passed is not False
