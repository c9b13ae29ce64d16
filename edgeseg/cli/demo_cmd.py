"""``edgeseg demo``: train → export fp32/fp16/int8 behind the accuracy gate → bench → report, on built-in data."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.cli.args import positive_int

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


def demo_options(args: argparse.Namespace) -> DemoOptions:
    """The demo's options from the command line: ``--quick`` presets, then what was given explicitly."""
    from edgeseg.demo import QUICK, DemoOptions

    options = DemoOptions(**QUICK) if args.quick else DemoOptions()
    given = {"out": args.out, "minutes": args.minutes, "bench_iters": args.iters}
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
    print(summary_table(result.report))
    verdict = {True: "passed", False: "FAILED", None: "not run"}[result.gate_passed]
    s = result.seconds
    print(f"accuracy gate: {verdict}; train {s['train']:.0f} s, export {s['export']:.0f} s, bench {s['bench']:.0f} s, "
          f"total {s['total'] / 60:.1f} min")
    print(f"checkpoint: {result.checkpoint}")
    print(f"bundle:     {result.bundle}")
    print(f"report:     {result.report_dir / 'report.html'}")
    return 0
