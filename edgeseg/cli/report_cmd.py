"""``edgeseg report RUN_DIR... --out DIR``: merge bench reports (say a Jetson's and a desktop's) into one."""

from __future__ import annotations

import argparse

from edgeseg.cli.common import add_json, examples, print_json
from edgeseg.cli.report_output import miou_note, summary_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by edgeseg bench --out")
    parser.add_argument("--out", required=True, help="folder for the merged report.json, report.md, report.html")
    add_json(parser, "the merged summary (one entry per engine)")
    examples(parser,
             "edgeseg report jetson-bench desktop-bench --out merged      # one table, every machine",
             "edgeseg report run1 run2 --out merged --json")


def main(args: argparse.Namespace) -> int:
    from edgeseg.fileio import check_replaceable, refuse_input_overlap
    from edgeseg.runtime.report import REPORT_KIND, write_merged_report
    from edgeseg.runtime.report.tables import summary_table

    check_replaceable(args.out, REPORT_KIND)
    refuse_input_overlap(args.out, args.runs)

    report = write_merged_report(args.runs, args.out)
    if args.json:
        print_json({"rows": summary_rows(report), "runs": len(report["runs"]), "report": str(args.out)})
        return 0
    print(summary_table(report))
    note = miou_note(report)
    if note:
        print(note)
    print(f"report: {args.out}/report.html ({len(report['runs'])} run(s), {len(report['rows'])} engine(s))")
    return 0
