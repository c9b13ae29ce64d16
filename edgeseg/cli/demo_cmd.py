"""``edgeseg demo``: train → export fp32/fp16/int8 behind the accuracy gate → bench → report, on built-in data."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.cli.args import positive_int
from edgeseg.cli.common import add_json, examples, print_json

if TYPE_CHECKING:
    from edgeseg.demo import DemoOptions


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes as a number, got {text!r}") from None
    if not 0.5 <= value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"--minutes must be between 0.5 and 1440, got {value:g}")
    return value


def _default_images() -> str:
    from edgeseg.demo import DemoOptions

    bench = DemoOptions.bench_images
    return (f"{DemoOptions.gate_images} for the gate, "
            f"{'the whole synthetic val split' if bench is None else bench} for the bench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="folder for every stage (default demo/, with --quick demo-quick/)")
    parser.add_argument("--model", default="bisenetv2", help="registry name (default bisenetv2)")
    parser.add_argument("--minutes", type=_minutes,
                        help="training time budget in minutes (default 5: the whole demo stays under 8 on 2 cores; "
                             "2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a quick start of about 3 minutes: 2 minutes of training, a smaller calibration, "
                             "gate and bench")
    parser.add_argument("--retrain", action="store_true", help="train again even if OUT has a checkpoint")
    parser.add_argument("--iters", type=positive_int, help="timed bench iterations (default 50, 20 with --quick)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for calibration and bench")
    parser.add_argument("--val-images", type=positive_int, metavar="N",
                        help="validation images the accuracy gate and each bench engine score (default: "
                             f"{_default_images()})")
    add_json(parser, "the outcome (gate, bench rows, paths, stage times)")
    examples(parser,
             "edgeseg demo                                   # about 8 minutes on 2 CPU cores",
             "edgeseg demo --quick                           # about 3 minutes: the whole pipeline once",
             "edgeseg demo --model lednet --minutes 2 --out demo-lednet",
             "edgeseg demo --json                            # again: reuses the checkpoint and bundle")


def demo_options(args: argparse.Namespace) -> DemoOptions:
    """The demo's options from the command line: ``--quick`` presets, then what was given explicitly."""
    from edgeseg.demo import QUICK, DemoOptions

    options = DemoOptions(**QUICK) if args.quick else DemoOptions()
    given = {"out": args.out, "minutes": args.minutes, "bench_iters": args.iters,
             "gate_images": args.val_images, "bench_images": args.val_images}
    return dataclasses.replace(options, model=args.model, retrain=args.retrain, threads=args.threads,
                               **{k: v for k, v in given.items() if v is not None})


def main(args: argparse.Namespace) -> int:
    from edgeseg.demo import check_out, run_demo
    from edgeseg.models import model_info
    from edgeseg.runtime.report.tables import summary_table

    options = demo_options(args)
    check_out(options.out)
    model_info(options.model)  # an unknown name fails before anything runs
    result = run_demo(options)
    from edgeseg.cli.report_output import miou_note, summary_rows
    from edgeseg.cli.variants import gate_note
    from edgeseg.runtime.bundle import open_bundle

    manifest = open_bundle(result.bundle).manifest
    s = result.seconds
    if args.json:
        print_json({"gate_passed": result.gate_passed, "gate": manifest.report("gate"), "seconds": s,
                    "checkpoint": str(result.checkpoint), "bundle": str(result.bundle),
                    "report": str(result.report_dir / "report.html"), "rows": summary_rows(result.report)})
        return 0
    print(summary_table(result.report))
    note = miou_note(result.report)
    if note:
        print(note)
    verdict = {True: "passed", False: "FAILED", None: "not run"}[result.gate_passed]
    if result.gate_passed is not None:
        print(f"accuracy gate {gate_note(manifest)}")
    print(f"accuracy gate: {verdict}; train {s['train']:.0f} s, export {s['export']:.0f} s, bench {s['bench']:.0f} s, "
          f"total {s['total'] / 60:.1f} min")
    print(f"checkpoint: {result.checkpoint}")
    print(f"bundle:     {result.bundle}")
    print(f"report:     {result.report_dir / 'report.html'}")
    return 0
