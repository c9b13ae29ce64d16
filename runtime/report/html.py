"""``report.html``: one self-contained file (inline CSS, plots embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Collection
from pathlib import Path

from edgeseg.runtime.report import plots
from edgeseg.runtime.report.markdown import READING
from edgeseg.runtime.report.tables import Table, accuracy_table, class_tables, environment_table, speed_table

log = logging.getLogger(__name__)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.front td { background: #f2fbf4; }
.scroll { overflow-x: auto; } figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 12.5px; } .note { color: #555; }
"""


def html_table(table: Table, front_rows: Collection[int] = ()) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="front"' if i in front_rows else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure(title: str, png: bytes, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">{text}</figure>'


def _plots(report: dict, base: Path) -> list[str]:
    if not plots.available():
        log.warning("matplotlib is not installed: report.html has tables only (pip install matplotlib)")
        return ['<p class="note">Plots need matplotlib (<code>pip install matplotlib</code>); '
                "rerun <code>edgeseg report</code> on this folder after installing it.</p>"]
    out = ["<h2>Accuracy against speed</h2>"]
    scatter = plots.accuracy_vs_fps(report)
    out.append(_figure("accuracy against FPS", scatter) if scatter else
               '<p class="note">No accuracy figures: bench with --data to score the engines.</p>')
    out += ["<h2>Latency</h2>", _figure("latency distribution", plots.latency_distribution(report)),
            _figure("stage split", plots.stage_split(report))]
    for title, png in plots.per_class_iou(report):
        out += [f"<h2>{html.escape(title)}</h2>", _figure(title, png)]
    for title, png in plots.overlays(report, base):
        out += [f"<h2>{html.escape(title)}</h2>",
                _figure(title, png, "Frame, ground truth and each engine's labels blended over the frame.")]
    return out


def render_html(report: dict, base: Path) -> str:
    """The HTML report; ``base`` is the folder the report's PNG paths are relative to."""
    front = {i for i, r in enumerate(report["rows"]) if r.get("pareto")}
    parts = [f"<h1>edgeseg benchmark report</h1><p>Created {html.escape(report['created'])}: "
             f"{len(report['rows'])} engine(s) on {len(report['runs'])} machine(s).</p>",
             f'<p class="note">{html.escape(READING)}</p>',
             "<h2>Machines</h2>", html_table(environment_table(report)),
             "<h2>Speed</h2>", html_table(speed_table(report), front),
             "<h2>Accuracy and cost</h2>", html_table(accuracy_table(report), front)]
    parts += _plots(report, base)
    for table in class_tables(report):
        parts += ["<h2>Per-class IoU (%)</h2>", html_table(table)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>edgeseg benchmark report</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
