"""``edgeseg export``: a checkpoint or registry model → a verified, TensorRT-linted ONNX bundle."""

from __future__ import annotations

import argparse
import json

from edgeseg.cli.args import fraction, input_size, non_negative_number, positive_int, positive_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registry name: alone, random weights (to check the pipeline); with "
                                        "--checkpoint, the model the checkpoint must hold")
    parser.add_argument("--checkpoint", help="an edgeseg checkpoint (.pt) from edgeseg train")
    parser.add_argument("--out", required=True, help="bundle folder to write (replaced atomically)")
    parser.add_argument("--input-size", type=input_size, metavar="HxW",
                        help="deploy size (default: the checkpoint's, else the model's)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=positive_int, default=1, help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension")
    parser.add_argument("--opset", type=positive_int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--outputs", default="labels", help="comma list of labels, logits, probs (default labels)")
    parser.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo")
    parser.add_argument("--simplify", choices=("onnxsim", "onnxslim", "none"), default="onnxsim")
    parser.add_argument("--num-classes", type=positive_int, help="classes for --model (default 19)")
    parser.add_argument("--data", help="also verify on this dataset's val images (data spec)")
    parser.add_argument("--min-agreement", type=fraction, default=0.999,
                        help="minimum ONNX Runtime vs torch label agreement (default 0.999)")
    parser.add_argument("--max-attention-mb", type=positive_number, default=1024.0, metavar="MB",
                        help="refuse deploy sizes whose (H·W)² attention matrix (danet) exceeds this (default 1024)")
    add_crf_arguments(parser)
    add_calibration_arguments(parser)


def add_crf_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ConvCRF post-processing (defaults: the paper's, see edgeseg/crf/params.py)")
    group.add_argument("--crf", action="store_true",
                       help="add crf.onnx (logits + image → labels, chained by the runtime) and model.crf.onnx "
                            "(the CRF fused after the model); the model also outputs logits")
    group.add_argument("--crf-iterations", type=positive_int, default=5, help="mean-field iterations (default 5)")
    group.add_argument("--crf-filter-size", type=positive_int, default=7, help="window on the grid (default 7)")
    group.add_argument("--crf-blur", type=positive_int, default=4, help="grid downsampling factor (default 4)")


def crf_params(args: argparse.Namespace):
    from edgeseg.crf.params import CRFParams

    return CRFParams(filter_size=args.crf_filter_size, blur=args.crf_blur, iterations=args.crf_iterations).validate()


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

    return CalibrationOptions(calib_data=args.calib_data, calib_size=args.calib_size, calib_depth=args.calib_depth,
                              method=args.calib_method,
                              target=args.int8_target, quantizer=args.quantizer, int8=int8, fp16=fp16,
                              eval_data=args.eval_data,
                              eval_images=args.eval_images, max_miou_drop=args.max_miou_drop,
                              max_search_steps=args.max_search_steps)


def variants_table(manifest: dict) -> tuple[str, bool]:
    """The closing table (variant, size, mIoU, drop, agreement) and whether the gate passed."""
    from edgeseg.texttable import render_table

    rows = []
    for name, v in manifest.get("variants", {}).items():
        miou = f"{100 * v['miou']:.2f}" if "miou" in v else "-"
        drop = f"{v['miou_drop']:.2f}" if "miou_drop" in v else "-"
        agree = f"{100 * v['label_agreement']:.2f}%" if "label_agreement" in v else "-"
        rows.append((name, v["file"], f"{v['bytes'] / 2**20:.1f}", miou, drop, agree))
    lines = [render_table(("variant", "file", "MB", "mIoU", "drop", "agreement"), rows)]
    gate = manifest.get("gate", {})
    passed = gate.get("passed")
    verdict = {True: "PASSED", False: "FAILED", None: "NOT GATED (no labelled eval set)"}[passed]
    lines.append(f"gate: mIoU drop <= {gate.get('max_miou_drop')} points on {gate.get('eval_data')} "
                 f"({gate.get('eval_images')} images): {verdict}")
    return "\n".join(lines), passed is not False


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.export.deploy import OUTPUTS
    from edgeseg.export.pipeline import ExportOptions, export_bundle

    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    if not outputs or set(outputs) - set(OUTPUTS):
        raise EdgesegError(f"--outputs must list some of {', '.join(OUTPUTS)}, got {args.outputs!r}")
    if not 0 < args.min_agreement <= 1:
        raise EdgesegError("--min-agreement must be in (0, 1]")
    calibration = calibration_options(args, args.int8, args.fp16) if (args.int8 or args.fp16) else None
    options = ExportOptions(input_size=args.input_size, batch=args.batch, dynamic_batch=args.dynamic_batch,
                            opset=args.opset, outputs=outputs, exporter=args.exporter, simplify=args.simplify,
                            min_agreement=args.min_agreement, data=args.data, num_classes=args.num_classes,
                            calibration=calibration, crf=crf_params(args) if args.crf else None,
                            max_attention_mb=args.max_attention_mb)
    bundle = export_bundle(args.out, model_name=args.model, checkpoint=args.checkpoint, options=options)
    m = bundle.manifest
    print(json.dumps({"bundle": str(bundle.root), "model": m["model"]["name"], "input": m["input"]["shape"],
                      "opset": m["onnx"]["opset"], "nodes": m["lint"]["node_count"],
                      "label_agreement": m["verification"]["label_agreement"],
                      "max_abs_logit_diff": m["verification"].get("max_abs_logit_diff")}))
    if calibration is None:
        return 0
    table, passed = variants_table(m)
    print(table)
    return 0 if passed else 1
