"""``report.md``: the tables in GitHub Markdown, and the figures as images under ``figures/``."""

from __future__ import annotations

from collections.abc import Sequence

from edgeseg.runtime.report.figures import ReportFigure, legends, of_kind
from edgeseg.runtime.report.tables import (
    Table,
    accuracy_table,
    class_tables,
    disagreement_table,
    environment_table,
    legend_table,
    quantization_table,
    speed_table,
)

READING = (
    "Latency is one inference of a batch after warm-up, as the runner times it (device events on a GPU, "
    "perf_counter on a CPU); FPS runs the same batch with the given number of inferences in flight; end-to-end "
    "FPS adds resizing the frame in and the labels out. The drop is mIoU points against the fp32 row of the same "
    "artifact and backend. ★ marks the engines no other engine beats in both FPS and mIoU on the same machine. "
    "⚠ marks rows whose latencies varied too much or that ran while other work loaded the machine. RSS increase "
    "is measured from each engine's own baseline, taken right before it loads with its backend's library "
    "already loaded."
)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(map(_escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def _image(figure: ReportFigure) -> str:
    text = f"![{_escape(figure.title)}]({figure.path})"
    return text + (f"\n\n*{figure.caption}*" if figure.caption else "")


def render_markdown(report: dict, figures: Sequence[ReportFigure] = ()) -> str:
    """The Markdown report; ``figures`` (see :func:`~edgeseg.runtime.report.figures.report_figures`) are
    linked from ``figures/``, where the report writer puts them."""
    figures = list(figures)
    parts = [f"# edgeseg benchmark report\n\nCreated {report['created']}; {len(report['rows'])} engine(s) on "
             f"{len(report['runs'])} machine(s).\n\n{READING}\n"]
    parts += [f"> **⚠ {_escape(note)}**" for note in report.get("notes", [])]
    parts += ["## Machines\n\n" + markdown_table(environment_table(report)),
              "## Speed\n\n" + markdown_table(speed_table(report)),
              "## Accuracy and cost\n\n" + markdown_table(accuracy_table(report))]
    quantization = quantization_table(report)
    if quantization[1]:
        parts.append("## Quantization\n\n" + markdown_table(quantization))
    for (classes, palette), figure in zip(legends(report), of_kind(figures, "legend")):
        parts.append(f"## Classes ({len(classes)})\n\n{_image(figure)}\n\n"
                     + markdown_table(legend_table(classes, palette)))
    for figure in of_kind(figures, "accuracy", "latency", "stages", "per_class", "confusion", "predictions"):
        parts.append(f"## {figure.title}\n\n{_image(figure)}")
    disagreement = disagreement_table(report)
    if disagreement[1]:
        maps = "".join(f"\n\n{_image(f)}" for f in of_kind(figures, "disagreement"))
        parts.append("## Where the labels differ from fp32\n\nShare of pixels whose label differs from the fp32 "
                     "reference's, per sample image." + maps + "\n\n" + markdown_table(disagreement))
    for table in class_tables(report):
        parts.append("## Per-class IoU (%)\n\n" + markdown_table(table))
    return "\n\n".join(parts) + "\n"
