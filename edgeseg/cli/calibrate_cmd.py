"""``edgeseg calibrate BUNDLE --calib-data SPEC``: redo only the precision variants and the gate."""

from __future__ import annotations

import argparse

from edgeseg.cli.variants import add_calibration_arguments, calibration_options, variants_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="a bundle folder from edgeseg export")
    parser.add_argument("--no-fp16", action="store_true", help="skip the FP16 variant")
    add_calibration_arguments(parser, required=True)


def main(args: argparse.Namespace) -> int:
    from edgeseg.calibration.pipeline import calibrate_bundle
    from edgeseg.fileio import staged_update
    from edgeseg.runtime.bundle import BUNDLE_KIND, open_bundle

    bundle = open_bundle(args.bundle)
    options = calibration_options(args, int8=True, fp16=not args.no_fp16)
    with staged_update(bundle.root, BUNDLE_KIND) as staged:  # the bundle changes whole, or not at all
        calibrate_bundle(staged, options)
    table, passed = variants_table(open_bundle(args.bundle).manifest)
    print(table)
    return 0 if passed else 1
