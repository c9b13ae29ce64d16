"""``report.html``: one self-contained file (inline CSS, plots embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Collection, Sequence

from edgeseg.runtime.report import plots
from edgeseg.runtime.report.figures import ReportFigure, legends, of_kind
from edgeseg.runtime.report.markdown import READING
from edgeseg.runtime.report.tables import (
    Table,
    accuracy_table,
    class_tables,
    disagreement_table,
    environment_table,
    hex_colour,
    quantization_table,
    speed_table,
)

log = logging.getLogger(__name__)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.front td { background: #f2fbf4; } tr.noisy td:last-child { background: #fff3cd; text-align: left; }
.scroll { overflow-x: auto; } figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 12.5px; } .note { color: #555; }
.warn { background: #fff3cd; border-left: 4px solid #e0a800; padding: .5em 1em; }
.swatch { display: inline-block; width: 1.1em; height: 1.1em; border: 1px solid #333; vertical-align: middle; }
table.legend td { text-align: left; }
"""


def html_table(table: Table, front_rows: Collection[int] = (), noisy_rows: Collection[int] = ()) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        classes = [c for c, on in (("front", i in front_rows), ("noisy", i in noisy_rows)) if on]
        cls = f' class="{" ".join(classes)}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure(figure: ReportFigure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    text = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure><img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">{text}</figure>'


def legend_html(classes: list[str], palette) -> str:
    """The class legend as a table of colour swatches and names (several columns for long class lists)."""
    per_column = max(8, -(-len(classes) // 4))
    columns = [range(start, min(start + per_column, len(classes))) for start in range(0, len(classes), per_column)]
    cells = []
    for r in range(per_column):
        row = []
        for column in columns:
            if r < len(column):
                k = column[r]
                row.append(f'<td><span class="swatch" style="background:{hex_colour(palette, k)}"></span> '
                           f"{k} {html.escape(classes[k])}</td>")
        cells.append("<tr>" + "".join(row) + "</tr>")
    return f'<table class="legend"><tbody>{"".join(cells)}</tbody></table>'


def _sections(report: dict, figures: list[ReportFigure]) -> list[str]:
    out = []
    for classes, palette in legends(report):
        out += [f"<h2>Classes ({len(classes)})</h2>", legend_html(classes, palette)]
    if not plots.available():
        log.warning("matplotlib is not installed: report.html has tables only (pip install matplotlib)")
        return out + ['<p class="note">Plots need matplotlib (<code>pip install matplotlib</code>); '
                      "rerun <code>edgeseg report</code> on this folder after installing it.</p>"]
    out.append("<h2>Accuracy against speed</h2>")
    scatter = of_kind(figures, "accuracy")
    out += [_figure(f) for f in scatter] or [
        '<p class="note">No accuracy figures: bench with --data to score the engines.</p>']
    out += ["<h2>Latency</h2>"] + [_figure(f) for f in of_kind(figures, "latency", "stages")]
    for figure in of_kind(figures, "per_class", "confusion", "predictions"):
        out += [f"<h2>{html.escape(figure.title)}</h2>", _figure(figure)]
    disagreement = disagreement_table(report)
    if disagreement[1]:
        out += ["<h2>Where the labels differ from fp32</h2>"]
        out += [_figure(f) for f in of_kind(figures, "disagreement")] + [html_table(disagreement)]
    return out


def render_html(report: dict, figures: Sequence[ReportFigure] = ()) -> str:
    """The HTML report, its ``figures`` (see :func:`~edgeseg.runtime.report.figures.report_figures`)
    embedded."""
    rows = report["rows"]
    front = {i for i, r in enumerate(rows) if r.get("pareto")}
    speed = speed_table(report)
    noisy = {i for i, row in enumerate(speed[1]) if row[-1]}
    parts = [f"<h1>edgeseg benchmark report</h1><p>Created {html.escape(report['created'])}: "
             f"{len(rows)} engine(s) on {len(report['runs'])} machine(s).</p>"]
    parts += [f'<p class="warn">⚠ {html.escape(note)}</p>' for note in report.get("notes", [])]
    parts += [f'<p class="note">{html.escape(READING)}</p>',
              "<h2>Machines</h2>", html_table(environment_table(report)),
              "<h2>Speed</h2>", html_table(speed, front, noisy),
              "<h2>Accuracy and cost</h2>", html_table(accuracy_table(report), front)]
    quantization = quantization_table(report)
    if quantization[1]:
        parts += ["<h2>Quantization</h2>", html_table(quantization)]
    parts += _sections(report, list(figures))
    for table in class_tables(report):
        parts += ["<h2>Per-class IoU (%)</h2>", html_table(table)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>edgeseg benchmark report</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
