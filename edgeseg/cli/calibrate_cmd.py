"""``edgeseg calibrate BUNDLE --calib-data SPEC``: redo only the precision variants and the gate."""

from __future__ import annotations

import argparse

from edgeseg.cli.common import add_json, examples, print_json
from edgeseg.cli.variants import (
    add_calibration_arguments,
    calibration_options,
    gate_passed,
    variants_result,
    variants_table,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="a bundle folder from edgeseg export")
    add_calibration_arguments(parser, calibrate=True)
    add_json(parser, "the variants and the gate")
    examples(parser,
             "edgeseg calibrate demo/bundle-bisenetv2 --calib-data synthetic              # INT8, gated",
             "edgeseg calibrate b --calib-data frames/ --val-data cityscapes:/data/cs --fp16 --val-images 100",
             "edgeseg calibrate b --calib-data clip.mp4 --calib-images 128 --calib-method entropy --json")


def main(args: argparse.Namespace) -> int:
    from edgeseg.calibration.pipeline import calibrate_bundle
    from edgeseg.fileio import staged_update
    from edgeseg.runtime.bundle import BUNDLE_KIND, open_bundle

    bundle = open_bundle(args.bundle)
    options = calibration_options(args, int8=True, fp16=args.fp16)
    with staged_update(bundle.root, BUNDLE_KIND) as staged:  # the bundle changes whole, or not at all
        calibrate_bundle(staged, options)
    manifest = open_bundle(args.bundle).manifest
    if args.json:
        print_json({"bundle": str(bundle.root), **variants_result(manifest)})
    else:
        print(variants_table(manifest)[0])
    return 0 if gate_passed(manifest) else 1
