"""Every picture a report shows, drawn once: written under ``figures/`` for ``report.md`` and embedded in
``report.html``. The class legends need only Pillow; the plots need matplotlib (:func:`plots.available`)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from edgeseg.runtime.overlay import legend_image
from edgeseg.runtime.report import plots
from edgeseg.runtime.report.document import gate_lines

FIGURES = "figures"
KINDS = ("legend", "accuracy", "latency", "stages", "per_class", "confusion", "predictions", "disagreement")


@dataclass(frozen=True)
class ReportFigure:
    """One picture: ``kind`` (the report section it belongs to, one of :data:`KINDS`), its ``title`` (heading
    and alt text), file ``name`` under ``figures/``, the PNG bytes and a caption."""

    kind: str
    title: str
    name: str
    png: bytes
    caption: str = ""

    @property
    def path(self) -> str:
        return f"{FIGURES}/{self.name}"


def legends(report: dict) -> list[tuple[list[str], list]]:
    """(classes, palette) of each distinct class list among the rows that have one."""
    seen: dict[tuple, list] = {}
    for row in report["rows"]:
        if row.get("classes") and tuple(row["classes"]) not in seen:
            seen[tuple(row["classes"])] = row.get("palette") or []
    return [(list(classes), palette) for classes, palette in seen.items()]


def _legend_png(classes: list[str], palette) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(legend_image(classes, palette)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


CAPTIONS = {
    "accuracy": "Filled markers are on the Pareto front. The mIoU axis spans at least "
                f"±{plots.MIOU_MARGIN:g} point around the data, so small differences look small.",
    "gate": " The dotted line is the accuracy gate: the fp32 reference's mIoU minus the budget edgeseg calibrate "
            "gated the variants with.",
    "no gate": " No accuracy gate is drawn: no bundle here recorded a calibration budget.",
    "predictions": "Frame, ground truth and each engine's labels blended over the frame.",
    "disagreement": "The frame in grey; coloured pixels are those whose label differs from the fp32 "
                    "reference's. The caption under each is the share of such pixels in that image.",
    "confusion": "Each row is a true class: the share of its pixels predicted as each class (the diagonal is "
                 "the class's recall).",
}


def report_figures(report: dict, base: Path) -> list[ReportFigure]:
    """Every figure of ``report`` (whose PNGs lie under ``base``), in the order the report shows them."""
    figures = [ReportFigure("legend", f"Class colours ({len(classes)} classes)", f"legend-{k}.png",
                            _legend_png(classes, palette))
               for k, (classes, palette) in enumerate(legends(report), 1)]
    if not plots.available():
        return figures
    scatter = plots.accuracy_vs_fps(report)
    if scatter is not None:
        gate = CAPTIONS["gate" if gate_lines(report) else "no gate"]
        figures.append(ReportFigure("accuracy", "Accuracy against speed", "accuracy.png", scatter,
                                    CAPTIONS["accuracy"] + gate))
    figures.append(ReportFigure("latency", "Latency", "latency.png", plots.latency_distribution(report)))
    figures.append(ReportFigure("stages", "Where the time goes", "stages.png", plots.stage_split(report)))
    for k, (title, png) in enumerate(plots.per_class_iou(report), 1):
        figures.append(ReportFigure("per_class", title, f"per-class-iou-{k}.png", png))
    for k, (title, png) in enumerate(plots.confusion_matrices(report), 1):
        figures.append(ReportFigure("confusion", title, f"confusion-{k}.png", png, CAPTIONS["confusion"]))
    for k, (title, png) in enumerate(plots.overlays(report, base), 1):
        figures.append(ReportFigure("predictions", title, f"predictions-{k}.png", png, CAPTIONS["predictions"]))
    for k, (title, png) in enumerate(plots.disagreement_maps(report, base), 1):
        figures.append(ReportFigure("disagreement", title, f"disagreement-{k}.png", png, CAPTIONS["disagreement"]))
    return figures


def write_figures(out: Path, figures: list[ReportFigure]) -> None:
    """Each figure's PNG under ``out/figures/``."""
    if figures:
        (out / FIGURES).mkdir(exist_ok=True)
    for figure in figures:
        (out / figure.path).write_bytes(figure.png)


def of_kind(figures: list[ReportFigure], *kinds: str) -> list[ReportFigure]:
    return [f for f in figures if f.kind in kinds]

