"""``edgeseg lint FILE.onnx``: check an ONNX file against TensorRT 10.x / 11.x's parser, and show what its edgeseg
metadata says it is (model, classes, precision, input, parent)."""

from __future__ import annotations

import argparse

from edgeseg.cli.common import add_json, examples, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", help="an .onnx file (or a bundle folder: its model.onnx)")
    add_json(parser, "the findings")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--trt-version", metavar="X.Y",
                        help="check the opset against this TensorRT's documented range, e.g. 10.3 for JetPack 6 "
                             "(default: the newest range, and a warning beyond TensorRT 10's)")
    examples(parser,
             "edgeseg lint model.onnx                          # will TensorRT's parser take it?",
             "edgeseg lint demo/bundle-bisenetv2 --trt-version 10.3 --strict --json")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeseg.export.lint import lint_file
    from edgeseg.runtime.bundle import open_bundle
    from edgeseg.runtime.onnx_metadata import NO_METADATA, read_metadata

    path = Path(args.onnx)
    if path.is_dir():
        bundle = open_bundle(path)
        path = bundle.path(bundle.find("onnx") or "model.onnx")
    report = lint_file(path, args.trt_version)
    metadata = read_metadata(path)  # after the lint: a file that is no ONNX model has been refused in one line
    if args.json:
        print_json({**report.to_dict(), "metadata": metadata.to_dict() if metadata else None})
    else:
        print(f"{report.table()}\nmetadata: {metadata.summary() if metadata else NO_METADATA}")
    failed = bool(report.errors) or (args.strict and bool(report.warnings))
    return 1 if failed else 0
