"""Bench reports: ``report.json`` (the data), ``report.md`` (tables) and ``report.html`` (tables and plots)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.fileio import staged_dir
from edgeseg.runtime.bench import BenchResult
from edgeseg.runtime.report.document import REPORT_JSON, REPORT_KIND, build_report, load_report, merge_reports

__all__ = ["REPORT_JSON", "REPORT_KIND", "build_report", "load_report", "merge_reports", "write_bench_report",
           "write_merged_report", "write_report_files"]


def write_report_files(out: Path, report: dict) -> dict[str, Path]:
    """Write report.json, report.md, report.html and the figures the Markdown shows (``figures/``) into ``out``
    (a staging folder: see ``staged_dir``)."""
    from edgeseg.runtime.report.figures import report_figures, write_figures
    from edgeseg.runtime.report.html import render_html
    from edgeseg.runtime.report.markdown import render_markdown

    paths = {"json": out / REPORT_JSON, "markdown": out / "report.md", "html": out / "report.html"}
    figures = report_figures(report, out)
    write_figures(out, figures)
    paths["json"].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(report, figures), encoding="utf-8")
    paths["html"].write_text(render_html(report, figures), encoding="utf-8")
    return paths


def write_bench_report(result: BenchResult, out: str | Path) -> dict:
    """The report folder of one bench run, written whole or not at all."""
    with staged_dir(out, REPORT_KIND) as tmp:
        report = build_report(result, tmp)
        write_report_files(tmp, report)
    return report


def write_merged_report(run_dirs: list[str | Path], out: str | Path) -> dict:
    """One comparison report from several report folders, written whole or not at all."""
    with staged_dir(out, REPORT_KIND) as tmp:
        report = merge_reports(run_dirs, tmp)
        write_report_files(tmp, report)
    return report
