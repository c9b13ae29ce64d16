"""``edgeseg export``: a checkpoint or registry model → a verified, TensorRT-linted ONNX bundle."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import fraction, input_size, number, positive_int, positive_number
from edgeseg.cli.common import add_canonical, add_json, examples, print_json
from edgeseg.cli.variants import (
    add_calibration_arguments,
    calibration_options,
    gate_passed,
    variants_result,
    variants_table,
)
from edgeseg.data.geometry import DEFAULT_RESIZE, RESIZE_MODES
from edgeseg.runtime.bundle import ARGMAX_AT
from edgeseg.runtime.manifest import FRAME_FORMATS
from edgeseg.runtime.overlay import DEFAULT_ALPHA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registry name: alone, random weights (to check the pipeline); with "
                                        "--checkpoint, the model the checkpoint must hold")
    parser.add_argument("--checkpoint", help="an edgeseg checkpoint (.pt) from edgeseg train")
    parser.add_argument("--out", required=True, help="bundle folder to write (replaced atomically)")
    parser.add_argument("--input-size", type=input_size, metavar="HxW",
                        help="deploy size (default: the checkpoint's, else the model's)")
    batch = parser.add_mutually_exclusive_group()
    add_canonical(batch, "--batch-size", "--batch", type=positive_int, default=1, metavar="N",
                  help="static batch size: images per inference (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension")
    parser.add_argument("--resize", choices=RESIZE_MODES, default=DEFAULT_RESIZE,
                        help="how frames of another size or aspect are fitted to the deploy size, by calibration, "
                             "eval, bench and run alike: stretch (default), letterbox (pad) or crop (centre)")
    parser.add_argument("--opset", type=positive_int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--outputs", default="labels",
                        help="comma list of labels, logits, probs, overlay (palette blended over the frame, in the "
                             "graph), color (the palette image) (default labels)")
    parser.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo",
                        help="torch's ONNX exporter (default dynamo)")
    parser.add_argument("--simplify", choices=("onnxsim", "onnxslim", "none"), default="onnxsim",
                        help="graph simplifier run before verification (default onnxsim)")
    parser.add_argument("--num-classes", type=positive_int, help="classes for --model (default 19)")
    parser.add_argument("--data", help="also verify ONNX Runtime against torch on a few of this dataset's val "
                                       "images (data spec; default: random inputs only)")
    parser.add_argument("--min-agreement", type=fraction, default=0.999,
                        help="minimum ONNX Runtime vs torch label agreement (default 0.999)")
    parser.add_argument("--max-attention-mb", type=positive_number, default=1024.0, metavar="MB",
                        help="refuse deploy sizes whose (H·W)² attention matrix (danet) exceeds this (default 1024)")
    add_json(parser, "the bundle's summary (and its variants and gate)")
    add_frame_arguments(parser)
    add_crf_arguments(parser)
    add_calibration_arguments(parser)
    examples(parser,
             "edgeseg export --checkpoint runs/demo/best.pt --out bundle                # fp32, verified",
             "edgeseg export --checkpoint best.pt --out bundle --fp16 --int8 --calib-data synthetic --val-images 50",
             "edgeseg export --model lednet --input-size 512x1024 --out lednet-random   # random weights",
             "edgeseg export --checkpoint best.pt --out cam --frame-size 720x1280 --frame-format bgr --outputs overlay")


def add_frame_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pixel work in the graph (the camera loop's host does no resize or blend)")
    group.add_argument("--frame-size", type=input_size, metavar="HxW",
                       help="the graph takes camera frames of this size (uint8 N×H×W×3) and maps them to the deploy "
                            "size itself (--resize: same placement as on the host; bilinear, not antialiased); "
                            "labels and pictures come back at this size")
    group.add_argument("--frame-format", choices=FRAME_FORMATS, default="rgb",
                       help="the frames' channel order (default rgb; bgr: OpenCV's and GStreamer's, no host "
                            "conversion; needs --frame-size)")
    group.add_argument("--overlay-alpha", type=number(0, 1), default=DEFAULT_ALPHA, metavar="A",
                       help=f"the palette colour's weight in the overlay output (default {DEFAULT_ALPHA})")
    group.add_argument("--argmax-at", choices=ARGMAX_AT, default="output",
                       help="logits: ArgMax at the logits' own resolution and a nearest upsample of the labels "
                            "(cheap; labels only), instead of upsampling every class and then ArgMax (default "
                            "output); its agreement with the full path is recorded in verify.json")
    group.add_argument("--min-argmax-agreement", type=fraction, default=0.9,
                       help="--argmax-at logits: refuse below this agreement with the full-resolution ArgMax "
                            "(default 0.9; --min-agreement stays the ONNX Runtime vs torch check)")


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


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.export.pipeline import ExportOptions
    from edgeseg.runtime.bundle import OUTPUTS
    from edgeseg.workflow import export_with_variants

    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    if not outputs or set(outputs) - set(OUTPUTS):
        raise EdgesegError(f"--outputs must list some of {', '.join(OUTPUTS)}, got {args.outputs!r}")
    calibration = calibration_options(args, args.int8, args.fp16) if (args.int8 or args.fp16) else None
    options = ExportOptions(input_size=args.input_size, batch=args.batch_size, dynamic_batch=args.dynamic_batch,
                            opset=args.opset, outputs=outputs, exporter=args.exporter, simplify=args.simplify,
                            min_agreement=args.min_agreement, data=args.data, num_classes=args.num_classes,
                            crf=crf_params(args) if args.crf else None, max_attention_mb=args.max_attention_mb,
                            resize=args.resize, frame_size=args.frame_size, frame_format=args.frame_format,
                            overlay_alpha=args.overlay_alpha, argmax_at=args.argmax_at,
                            min_argmax_agreement=args.min_argmax_agreement)
    bundle = export_with_variants(args.out, model_name=args.model, checkpoint=args.checkpoint, options=options,
                                  calibration=calibration)
    m = bundle.manifest
    verification = m.report("verification")
    summary = {"bundle": str(bundle.root), "model": m.model.name, "input": m.inputs[0].shape,
               "opset": m.report("onnx")["opset"], "nodes": m.report("lint")["node_count"],
               "label_agreement": verification["label_agreement"],
               "max_abs_logit_diff": verification.get("max_abs_logit_diff")}
    if args.json:
        print_json({**summary, **(variants_result(m) if calibration is not None else {})})
    else:
        diff = summary["max_abs_logit_diff"]
        print(f"bundle {summary['bundle']}: {summary['model']}, input {'x'.join(map(str, summary['input']))}, "
              f"opset {summary['opset']}, {summary['nodes']} nodes; ONNX Runtime agrees with torch on "
              f"{100 * summary['label_agreement']:.2f}% of labels"
              + (f" (max |logit diff| {diff:.2g})" if diff is not None else ""))
        if calibration is not None:
            print(variants_table(m)[0])
    return 0 if calibration is None or gate_passed(m) else 1
