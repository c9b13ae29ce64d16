"""``edgeseg demo``: train → export fp32/fp16/int8 behind the accuracy gate → bench → report, on built-in data."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeseg.cli.args import positive_int


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes as a number, got {text!r}") from None
    if not 0.5 <= value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"--minutes must be between 0.5 and 1440, got {value:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo"), help="folder for every stage (default demo/)")
    parser.add_argument("--model", default="bisenetv2", help="registry name (default bisenetv2)")
    parser.add_argument("--minutes", type=_minutes, default=5.0,
                        help="training time budget in minutes (default 5: the whole demo stays under 10 on 2 cores)")
    parser.add_argument("--retrain", action="store_true", help="train again even if OUT has a checkpoint")
    parser.add_argument("--iters", type=positive_int, default=50, help="timed bench iterations (default 50)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for calibration and bench")


def main(args: argparse.Namespace) -> int:
    from edgeseg.demo import DemoOptions, check_out, run_demo
    from edgeseg.models import model_info
    from edgeseg.runtime.report.tables import summary_table

    check_out(args.out)
    model_info(args.model)  # an unknown name fails before anything runs
    result = run_demo(DemoOptions(out=args.out, model=args.model, minutes=args.minutes, retrain=args.retrain,
                                  bench_iters=args.iters, threads=args.threads))
    print(summary_table(result.report))
    verdict = {True: "passed", False: "FAILED", None: "not run"}[result.gate_passed]
    s = result.seconds
    print(f"accuracy gate: {verdict}; train {s['train']:.0f} s, export {s['export']:.0f} s, bench {s['bench']:.0f} s, "
          f"total {s['total'] / 60:.1f} min")
    print(f"checkpoint: {result.checkpoint}")
    print(f"bundle:     {result.bundle}")
    print(f"report:     {result.report_dir / 'report.html'}")
    return 0
