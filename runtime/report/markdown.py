"""``report.md``: the report's tables in GitHub Markdown."""

from __future__ import annotations

from edgeseg.runtime.report.tables import Table, accuracy_table, class_tables, environment_table, speed_table

READING = (
    "Latency is one inference of a batch after warm-up, as the runner times it (device events on a GPU, "
    "perf_counter on a CPU); FPS runs the same batch with the given number of inferences in flight; end-to-end "
    "FPS adds resizing the frame in and the labels out. The drop is mIoU points against the fp32 row of the same "
    "artifact and backend. ★ marks the engines no other engine beats in both FPS and mIoU on the same machine."
)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(map(_escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    parts = [f"# edgeseg benchmark report\n\nCreated {report['created']}; {len(report['rows'])} engine(s) on "
             f"{len(report['runs'])} machine(s).\n\n{READING}\n",
             "## Machines\n\n" + markdown_table(environment_table(report)),
             "## Speed\n\n" + markdown_table(speed_table(report)),
             "## Accuracy and cost\n\n" + markdown_table(accuracy_table(report))]
    for table in class_tables(report):
        parts.append("## Per-class IoU (%)\n\n" + markdown_table(table))
    return "\n\n".join(parts) + "\n"
