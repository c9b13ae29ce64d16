"""``edgeseg build BUNDLE``: a TensorRT engine from the bundle's typed ONNX, added to the bundle."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import non_negative_int, positive_int
from edgeseg.cli.common import PRECISION_DEFAULT, add_json, examples, print_json
from edgeseg.runtime.backends import PRECISIONS


def _opt_level(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 5:
        raise argparse.ArgumentTypeError(f"expected 0..5, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="a bundle folder from edgeseg export")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISION_DEFAULT,
                        help=f"which typed ONNX to build (default {PRECISION_DEFAULT}, as trtexec; fp16 for speed; "
                             "int8 builds the Q/DQ model)")
    parser.add_argument("--workspace", type=positive_int, metavar="MB",
                        help="workspace memory pool limit (default: TensorRT's, the GPU's memory)")
    parser.add_argument("--opt-level", type=_opt_level, default=3, help="builder optimisation level 0..5 (default 3)")
    parser.add_argument("--timing-cache", metavar="FILE", help="read and update this timing cache")
    parser.add_argument("--dla", type=non_negative_int, metavar="CORE",
                        help="run on this DLA core (Jetson Xavier / Orin)")
    parser.add_argument("--gpu-fallback", action="store_true", help="with --dla: layers DLA cannot run go to the GPU")
    parser.add_argument("--version-compatible", action="store_true",
                        help="an engine later TensorRT versions can run (lean runtime)")
    parser.add_argument("--hardware-compatibility", choices=("none", "ampere+", "same-cc"), default="none",
                        help="an engine that runs on other GPUs: every Ampere+ GPU, or the same compute capability "
                             "(default none: this GPU only)")
    parser.add_argument("--legacy-calibrator", action="store_true",
                        help="TensorRT 10 only: implicit INT8 from model.onnx and calib.cache "
                             "(IInt8EntropyCalibrator2)")
    parser.add_argument("--calib-data", help="with --legacy-calibrator and no calib.cache: calibration images")
    parser.add_argument("--crf", action="store_true",
                        help="build the bundle's ConvCRF (crf.onnx → crf.fp32.engine) for edgeseg run --crf")
    parser.add_argument("--max-batch", type=positive_int, default=8,
                        help="dynamic-batch bundles: the largest batch of the optimization profile (default 8)")
    parser.add_argument("--opt-batch", type=positive_int,
                        help="dynamic-batch bundles: the batch TensorRT tunes for (default --max-batch)")
    parser.add_argument("--print-trtexec", action="store_true",
                        help="print the equivalent trtexec command and exit (needs no TensorRT here)")
    add_json(parser, "the engine's summary (or, with --print-trtexec, the command)")
    examples(parser,
             "edgeseg build demo/bundle-bisenetv2 --precision fp16              # on the Jetson or GPU box",
             "edgeseg build b --precision int8 --dla 0 --gpu-fallback          # Xavier / Orin DLA",
             "edgeseg build b --precision fp16 --print-trtexec                 # the same, as a trtexec command")


def main(args: argparse.Namespace) -> int:
    from edgeseg.runtime.build import build_engine
    from edgeseg.runtime.engine_plan import BuildOptions

    options = BuildOptions(precision=args.precision, workspace_mb=args.workspace, opt_level=args.opt_level,
                           timing_cache=args.timing_cache, dla_core=args.dla, gpu_fallback=args.gpu_fallback,
                           version_compatible=args.version_compatible,
                           hardware_compatibility=args.hardware_compatibility,
                           legacy_calibrator=args.legacy_calibrator, calib_data=args.calib_data, crf=args.crf,
                           max_batch=args.max_batch, opt_batch=args.opt_batch)
    if args.print_trtexec:
        from edgeseg.runtime.trtexec import build_command

        command = build_command(args.bundle, options)
        if args.json:
            print_json({"command": command})
        else:
            print(command)
        return 0
    images = None
    if args.legacy_calibrator and args.calib_data:
        import numpy as np

        from edgeseg.calibration.readers import load_calibration_set
        from edgeseg.runtime.bundle import open_bundle

        bundle = open_bundle(args.bundle)
        images = np.stack(load_calibration_set(args.calib_data, bundle.feed_size, mode=bundle.host_resize,
                                                bgr=bundle.frame_bgr).images)
    result = build_engine(args.bundle, options, calibration_images=images)
    layers = result["layers"]
    summary = {"engine": result["engine"], "precision": args.precision, "tensorrt": result["entry"]["tensorrt"],
               "gpu": result["entry"]["gpu"], "build_seconds": result["entry"]["build_seconds"],
               "layers": len(layers["layers"]), "by_precision": layers["by_precision"],
               "by_device": layers["by_device"]}
    if args.json:
        print_json(summary)
    else:
        mix = ", ".join(f"{n} {k}" for k, n in summary["by_precision"].items())
        where = ", ".join(f"{n} on {k}" for k, n in summary["by_device"].items())
        print(f"engine {summary['engine']} ({args.precision}, TensorRT {summary['tensorrt']}, {summary['gpu']}): "
              f"{summary['layers']} layers ({mix}; {where}), built in {summary['build_seconds']:.0f} s")
    return 0
