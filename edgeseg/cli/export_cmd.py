"""``edgeseg export``: a checkpoint or registry model → a verified, TensorRT-linted ONNX bundle."""

from __future__ import annotations

import argparse
import json

from edgeseg.cli.args import input_size, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registry name (random weights; for checking the pipeline)")
    src.add_argument("--checkpoint", help="an edgeseg checkpoint (.pt) from edgeseg train")
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
    parser.add_argument("--min-agreement", type=float, default=0.999,
                        help="minimum ONNX Runtime vs torch label agreement (default 0.999)")


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.export.deploy import OUTPUTS
    from edgeseg.export.pipeline import ExportOptions, export_bundle

    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    if not outputs or set(outputs) - set(OUTPUTS):
        raise EdgesegError(f"--outputs must list some of {', '.join(OUTPUTS)}, got {args.outputs!r}")
    if not 0 < args.min_agreement <= 1:
        raise EdgesegError("--min-agreement must be in (0, 1]")
    options = ExportOptions(input_size=args.input_size, batch=args.batch, dynamic_batch=args.dynamic_batch,
                            opset=args.opset, outputs=outputs, exporter=args.exporter, simplify=args.simplify,
                            min_agreement=args.min_agreement, data=args.data, num_classes=args.num_classes)
    bundle = export_bundle(args.out, model_name=args.model, checkpoint=args.checkpoint, options=options)
    m = bundle.manifest
    print(json.dumps({"bundle": str(bundle.root), "model": m["model"]["name"], "input": m["input"]["shape"],
                      "opset": m["onnx"]["opset"], "nodes": m["lint"]["node_count"],
                      "label_agreement": m["verification"]["label_agreement"],
                      "max_abs_logit_diff": m["verification"].get("max_abs_logit_diff")}))
    return 0
