"""The precision-variant flags, options and closing table shared by ``edgeseg export`` and ``edgeseg calibrate``
(command modules do not import each other)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edgeseg.cli.args import non_negative_number, positive_int
from edgeseg.cli.common import add_canonical

if TYPE_CHECKING:
    from edgeseg.runtime.manifest import Manifest


def add_calibration_arguments(parser: argparse.ArgumentParser, calibrate: bool = False) -> None:
    """The precision-variant flags shared by ``export`` and ``calibrate`` (``calibrate``: INT8 always, FP16 on
    request, the calibration images required)."""
    group = parser.add_argument_group("precision variants and accuracy gate")
    if not calibrate:
        group.add_argument("--int8", action="store_true", help="add model.int8.onnx (Q/DQ) and calib.cache")
    group.add_argument("--fp16", action="store_true",
                       help=("also remake model.fp16.onnx (without it, an FP16 variant already in the bundle is kept "
                             "and scored again)") if calibrate else "add model.fp16.onnx")
    if calibrate:  # the opt-out calibrate had: FP16 is now opt-in, as on export
        group.add_argument("--no-fp16", action="store_true", help=argparse.SUPPRESS)
    group.add_argument("--calib-data", required=calibrate,
                       help="calibration images: a data spec, an image folder, or a video file")
    add_canonical(group, "--calib-images", "--calib-size", type=positive_int, default=64, metavar="N",
                  help="calibration images (default 64)")
    group.add_argument("--calib-depth", metavar="DIR",
                       help="RGB-D models: depth maps (16-bit PNG mm or .npy m) paired by stem with a "
                            "calibration image folder")
    group.add_argument("--calib-method", choices=("entropy", "percentile", "minmax"), default="percentile",
                       help="activation ranges: percentile (99.999th, default: the smallest INT8 drop measured in "
                            "benchmarks/results/int8_methods.json), entropy (TensorRT's KL, 2048 bins) or minmax")
    group.add_argument("--int8-target", choices=("tensorrt", "cpu"), default="tensorrt",
                       help="Q/DQ layout: symmetric int8 for TensorRT (default), or uint8 activations for ONNX "
                            "Runtime CPUs")
    group.add_argument("--trt-version", default="10.3", metavar="X.Y[.Z]",
                       help="the TensorRT that will read calib.cache (its header names the version; default 10.3, "
                            "JetPack 6); edgeseg build rewrites it for the TensorRT installed there")
    group.add_argument("--quantizer", choices=("onnxruntime", "modelopt"), default="onnxruntime",
                       help="Q/DQ tool: onnxruntime.quantization (default), or NVIDIA Model Optimizer when "
                            "installed")
    add_canonical(group, "--val-data", "--eval-data", metavar="SPEC",
                  help="labelled set the gate scores (default: the calibration dataset's val split)")
    add_canonical(group, "--val-images", "--eval-images", type=positive_int, default=50, metavar="N",
                  help="images the gate scores, each variant with ONNX Runtime (default 50)")
    group.add_argument("--max-miou-drop", type=non_negative_number, default=1.0, metavar="POINTS",
                       help="mIoU budget in points (default 1.0)")
    group.add_argument("--max-search-steps", type=positive_int, default=8,
                       help="sensitivity search steps (layers left in float double each step; default 8)")


def calibration_options(args: argparse.Namespace, int8: bool, fp16: bool):
    from edgeseg.calibration.pipeline import CalibrationOptions
    from edgeseg.runtime.trt_features import cache_version_number

    return CalibrationOptions(calib_data=args.calib_data, calib_size=args.calib_images, calib_depth=args.calib_depth,
                              method=args.calib_method,
                              target=args.int8_target, quantizer=args.quantizer, int8=int8, fp16=fp16,
                              eval_data=args.val_data,
                              eval_images=args.val_images, max_miou_drop=args.max_miou_drop,
                              max_search_steps=args.max_search_steps,
                              trt_version=cache_version_number(args.trt_version))


def gate_note(manifest: Manifest) -> str:
    """What the gate's mIoU was measured on: ONNX Runtime, the image count and set, and the resolution."""
    gate = manifest.report("gate")
    h, w = manifest.input.feed_size
    return (f"mIoU: ONNX Runtime on {gate.get('eval_images')} images of {gate.get('eval_data')}, each fitted to the "
            f"{h}x{w} input ({manifest.input.resize}) and scored at the image's own size")


def variants_result(manifest: Manifest) -> dict:
    """The variants and the gate as the ``--json`` result of ``export`` and ``calibrate``."""
    gate = manifest.report("gate")
    h, w = manifest.input.feed_size
    return {"variants": manifest.report("variants"),
            "gate": {**gate, "backend": "onnxruntime", "input_size": [h, w], "resize": manifest.input.resize}}


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
    if passed is not None:
        lines.append(gate_note(manifest))
    lines.append(f"gate: mIoU drop <= {gate.get('max_miou_drop')} points on {gate.get('eval_data')} "
                 f"({gate.get('eval_images')} images): {verdict}")
    return "\n".join(lines), passed is not False


def gate_passed(manifest: Manifest) -> bool:
    """False only when the gate ran and failed."""
    return manifest.report("gate").get("passed") is not False
