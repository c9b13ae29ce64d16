"""``edgeseg deploy TARGET BUNDLE --out DIR``: hand a bundle off to the engines users scale on.

Each target lives in its own module with ``add_arguments(parser)`` and ``main(args)``; this command only
dispatches, so ``deploy triton`` never imports DeepStream's graph surgery and the reverse.
"""

from __future__ import annotations

import argparse
import importlib

from edgeseg.cli.common import examples

# target -> (module, one-line help)
TARGETS: dict[str, tuple[str, str]] = {
    "deepstream": ("edgeseg.export.deepstream",
                   "nvinfer config, labels, calibration cache and a float-input graph for DeepStream"),
    "triton": ("edgeseg.export.triton", "a Triton Inference Server model repository (ONNX or TensorRT plan)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True,
                                    parser_class=type(parser))
    for name, (module_name, help_text) in TARGETS.items():
        sub = targets.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(_target_module=module)
    examples(parser,
             "edgeseg deploy deepstream bundle/ --out ds/ --precision fp16",
             "edgeseg deploy deepstream bundle/ --out ds/ --precision int8 --dla 0",
             "edgeseg deploy triton bundle/ --out models/ --max-batch 8 --instances 2")


def main(args: argparse.Namespace) -> int:
    return int(args._target_module.main(args) or 0)
