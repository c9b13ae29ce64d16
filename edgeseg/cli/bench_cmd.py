"""``edgeseg bench``: latency, throughput, memory and accuracy per (artifact, backend, precision), with a report."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import non_negative_int, positive_int, torch_device_or_auto
from edgeseg.cli.common import DEVICE_HELP, add_canonical, add_json, examples, print_json
from edgeseg.cli.report_output import miou_note, summary_rows
from edgeseg.data.synthetic_source import VAL_SIZE
from edgeseg.runtime.backends import BACKEND_CHOICES, PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to measure")
    what.add_argument("artifacts", nargs="+", metavar="BUNDLE_OR_FILE",
                      help="bundle folders, or files in them (model.int8.onnx, ...), or lone .onnx files")
    what.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                      help="auto (default): every backend installed here that has a file to run")
    what.add_argument("--precision", choices=("all", *PRECISIONS), default="all",
                      help="which variants of each bundle (default all)")
    what.add_argument("--device", type=torch_device_or_auto, default="auto",
                      help=f"where the torch backend runs: {DEVICE_HELP} (default auto; cuda also adds an fp16 row)")
    what.add_argument("--providers", choices=("cpu", "cuda", "tensorrt", "auto"), default="cpu",
                      help="ONNX Runtime execution providers (default cpu)")
    what.add_argument("--threads", type=positive_int, help="CPU threads per backend (default: all cores)")
    timing = parser.add_argument_group("timing (per engine)")
    timing.add_argument("--warmup", type=non_negative_int, default=10,
                        help="untimed iterations first (default 10)")
    timing.add_argument("--iters", type=positive_int, default=100,
                        help="timed iterations, for latency and again for throughput (default 100)")
    add_canonical(timing, "--batch-size", "--batch", type=positive_int, metavar="N",
                  help="images per inference (default: the model's static batch)")
    timing.add_argument("--streams", type=positive_int, default=1, help="inferences in flight for FPS (default 1)")
    accuracy = parser.add_argument_group("accuracy (mIoU; a progress bar shows each engine's validation)")
    accuracy.add_argument("--data", help="labelled data spec for mIoU and overlays (default: none, speed only)")
    accuracy.add_argument("--split", default="val", help="dataset split (default val)")
    add_canonical(accuracy, "--val-images", "--max-images", type=positive_int, metavar="N",
                  help="score only the first N images of the split on every engine (default: all of it; "
                       f"synthetic/val has {VAL_SIZE})")
    accuracy.add_argument("--overlays", type=non_negative_int, default=3,
                          help="prediction overlays per engine (default 3)")
    output = parser.add_argument_group("output (the summary table on stdout)")
    add_canonical(output, "--out", "--report", metavar="DIR",
                  help="write report.json, report.md and report.html here (default: no files)")
    output.add_argument("--trtexec-times", action="append", default=[], metavar="FILE",
                        help="a trtexec --exportTimes JSON: one more row in the report (repeatable; default none)")
    add_json(output, "the summary (one entry per engine)")
    examples(parser,
             "edgeseg bench demo/bundle-bisenetv2 --iters 50                  # speed of every variant",
             "edgeseg bench demo/bundle-bisenetv2 --data synthetic --val-images 20 --out bench-report",
             "edgeseg bench b/model.int8.onnx --backend onnxruntime --threads 4 --json")


def main(args: argparse.Namespace) -> int:
    import logging

    from edgeseg.fileio import check_replaceable, refuse_input_overlap
    from edgeseg.runtime.bench import BenchSettings, run_bench
    from edgeseg.runtime.report import REPORT_KIND, build_report, write_bench_report
    from edgeseg.runtime.report.tables import summary_table

    if args.out:  # before minutes of measuring
        check_replaceable(args.out, REPORT_KIND)
        refuse_input_overlap(args.out, args.artifacts)
    if args.warmup > args.iters:
        logging.getLogger(__name__).warning(
            "--warmup %d is longer than --iters %d: each engine runs %d untimed iterations for %d timed ones",
            args.warmup, args.iters, args.warmup, args.iters)

    from edgeseg.runtime.trtexec import trtexec_row

    extra = [trtexec_row(path) for path in args.trtexec_times]  # refused before minutes of measuring
    settings = BenchSettings(backend=args.backend, precision=args.precision, data=args.data, split=args.split,
                             max_images=args.val_images, warmup=args.warmup, iters=args.iters,
                             batch=args.batch_size, streams=args.streams, threads=args.threads,
                             providers=args.providers, device=args.device, overlays=args.overlays)
    result = run_bench(args.artifacts, settings)
    for n, row in enumerate(extra, 1):
        result.rows.append({**row, "id": f"trtexec-{n}"})
    report = write_bench_report(result, args.out) if args.out else build_report(result, None)
    if args.json:
        print_json({"rows": summary_rows(report), "report": str(args.out) if args.out else None})
        return 0
    print(summary_table(report))
    note = miou_note(report)
    if note:
        print(note)
    if args.out:
        print(f"report: {args.out}/report.html (tables and plots), report.md, report.json")
    return 0
