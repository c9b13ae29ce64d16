"""``edgeseg bench``: latency, throughput, memory and accuracy per (artifact, backend, precision), with a report."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import non_negative_int, positive_int, torch_device
from edgeseg.runtime.backends import BACKEND_CHOICES, PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="BUNDLE_OR_FILE",
                        help="bundle folders, or files in them (model.int8.onnx, ...), or lone .onnx files")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="auto (default): every backend installed here that has a file to run")
    parser.add_argument("--precision", choices=("all", *PRECISIONS), default="all")
    parser.add_argument("--data", help="labelled data spec for mIoU and overlays (without it: speed only)")
    parser.add_argument("--split", default="val", help="dataset split (default val)")
    parser.add_argument("--max-images", type=positive_int, help="score only the first N images")
    parser.add_argument("--warmup", type=non_negative_int, default=10, help="untimed iterations first (default 10)")
    parser.add_argument("--iters", type=positive_int, default=100, help="timed iterations (default 100)")
    parser.add_argument("--batch", type=positive_int, help="batch size (default: the model's static batch)")
    parser.add_argument("--streams", type=positive_int, default=1, help="inferences in flight for FPS (default 1)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads per backend (default: all cores)")
    parser.add_argument("--providers", choices=("cpu", "cuda", "tensorrt", "auto"), default="cpu",
                        help="ONNX Runtime execution providers (default cpu)")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="torch backend: cpu (default), or cuda / cuda:N (adds an fp16 row)")
    parser.add_argument("--overlays", type=non_negative_int, default=3,
                        help="prediction overlays per engine (default 3)")
    parser.add_argument("--report", metavar="DIR", help="write report.json, report.md and report.html here")
    parser.add_argument("--trtexec-times", action="append", default=[], metavar="FILE",
                        help="a trtexec --exportTimes JSON: one more row in the report (repeatable)")


def main(args: argparse.Namespace) -> int:
    from edgeseg.fileio import check_replaceable, refuse_input_overlap
    from edgeseg.runtime.bench import BenchSettings, run_bench
    from edgeseg.runtime.report import REPORT_KIND, build_report, write_bench_report
    from edgeseg.runtime.report.tables import summary_table

    if args.report:  # before minutes of measuring
        check_replaceable(args.report, REPORT_KIND)
        refuse_input_overlap(args.report, args.artifacts)

    from edgeseg.runtime.trtexec import trtexec_row

    extra = [trtexec_row(path) for path in args.trtexec_times]  # refused before minutes of measuring
    settings = BenchSettings(backend=args.backend, precision=args.precision, data=args.data, split=args.split,
                             max_images=args.max_images, warmup=args.warmup, iters=args.iters, batch=args.batch,
                             streams=args.streams, threads=args.threads, providers=args.providers,
                             device=args.device, overlays=args.overlays)
    result = run_bench(args.artifacts, settings)
    for n, row in enumerate(extra, 1):
        result.rows.append({**row, "id": f"trtexec-{n}"})
    report = write_bench_report(result, args.report) if args.report else build_report(result, None)
    print(summary_table(report))
    if args.report:
        print(f"report: {args.report}/report.html (tables and plots), report.md, report.json")
    return 0
