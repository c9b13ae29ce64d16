"""The report's figures as PNG bytes (matplotlib's object API on the Agg canvas: no pyplot, no display).

matplotlib is optional (``pip install edgeseg[report]``): :func:`available` says whether it is installed, and
the HTML report falls back to tables without it.
"""

from __future__ import annotations

import importlib.util
import io
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.runtime.overlay import blend, load_label_png
from edgeseg.runtime.report.document import row_label, rows_by_classes

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
STAGES = (("preprocess", "#8da0cb"), ("transfer", "#fc8d62"), ("inference", "#66c2a5"), ("postprocess", "#e78ac3"))


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def accuracy_vs_fps(report: dict) -> bytes | None:
    """mIoU against throughput for every engine with an accuracy figure; each run's Pareto front joined."""
    rows = [r for r in report["rows"] if r.get("accuracy")]
    if not rows:
        return None
    fig = _figure(8, 5)
    ax = fig.subplots()
    colours = _colours(len(report["rows"]))
    index = {r["id"]: i for i, r in enumerate(report["rows"])}
    for row in rows:
        x, y = row["throughput"]["fps"], 100 * row["accuracy"]["miou"]
        colour = colours[index[row["id"]]]
        ax.scatter([x], [y], s=90 if row.get("pareto") else 50, marker=MARKERS.get(row["precision"], "o"),
                   facecolors=colour if row.get("pareto") else "none", edgecolors=colour, linewidths=1.5,
                   label=row_label(row, report), zorder=3)
    for run in report["runs"]:
        front = sorted((r["throughput"]["fps"], 100 * r["accuracy"]["miou"]) for r in rows
                       if r["run"] == run["id"] and r.get("pareto"))
        if len(front) > 1:
            ax.plot(*zip(*front), color="0.3", linestyle="--", linewidth=1, zorder=2)
    fps = [r["throughput"]["fps"] for r in rows]
    if max(fps) / max(min(fps), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"throughput (frames/s, {rows[0]['throughput']['streams']} in flight)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against speed (filled: on the Pareto front, dashed: the front)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def latency_distribution(report: dict) -> bytes:
    """Per engine: every latency sample (dots), the p25–p75 box, the p1–p99 whisker and the median."""
    rows = report["rows"]
    fig = _figure(8, 1.0 + 0.45 * len(rows))
    ax = fig.subplots()
    colours = _colours(len(rows))
    rng = np.random.default_rng(0)
    for i, row in enumerate(rows):
        samples = np.asarray(row["latency_ms"].get("samples") or [row["latency_ms"]["p50"]], np.float64)
        p1, p25, p50, p75, p99 = np.percentile(samples, [1, 25, 50, 75, 99])
        ax.plot([p1, p99], [i, i], color="0.4", linewidth=1, zorder=1)
        ax.barh(i, p75 - p25, left=p25, height=0.5, color=colours[i], alpha=0.5, zorder=2)
        ax.plot([p50, p50], [i - 0.25, i + 0.25], color="black", linewidth=2, zorder=3)
        ax.scatter(samples, i + rng.uniform(-0.18, 0.18, samples.size), s=4, color=colours[i], alpha=0.5, zorder=4)
    ax.set_yticks(range(len(rows)), [textwrap.fill(row_label(r, report), 40) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("inference latency (ms per batch)")
    ax.set_title("Latency distribution (box p25–p75, bar p50, line p1–p99)")
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def stage_split(report: dict) -> bytes:
    """Mean time per frame in each stage, stacked: where each engine's time goes."""
    rows = report["rows"]
    fig = _figure(8, 1.0 + 0.45 * len(rows))
    ax = fig.subplots()
    left = np.zeros(len(rows))
    for stage, colour in STAGES:
        values = np.array([r["stages_ms"].get(stage) or 0.0 for r in rows])
        if values.any():
            ax.barh(range(len(rows)), values, left=left, color=colour, label=stage, height=0.6)
            left += values
    ax.set_yticks(range(len(rows)), [textwrap.fill(row_label(r, report), 40) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean ms per batch")
    ax.set_title("Where the time goes")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def per_class_iou(report: dict) -> list[tuple[str, bytes]]:
    """A heatmap of IoU (%) per class and engine, one per distinct class list among the rows."""
    figures = []
    for classes, rows in rows_by_classes(report).items():
        values = np.array([[np.nan if v is None else 100 * v for v in r["accuracy"]["per_class_iou"]] for r in rows]).T
        fig = _figure(2.5 + 1.3 * len(rows), 1.2 + 0.3 * len(classes))
        ax = fig.subplots()
        im = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(rows)), [textwrap.fill(row_label(r, report), 16) for r in rows], fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        if values.size <= 600:
            for (ci, ri), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(ri, ci, f"{v:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 60 else "black")
        fig.colorbar(im, ax=ax, label="IoU (%)")
        ax.set_title("Per-class IoU")
        figures.append((f"Per-class IoU ({len(classes)} classes)", _png(fig)))
    return figures


def overlays(report: dict, base: Path) -> list[tuple[str, bytes]]:
    """Per run: each sample frame, its ground truth and every engine's prediction, blended over the frame."""
    figures = []
    for run in report["runs"]:
        rows = [r for r in report["rows"] if r["run"] == run["id"] and r.get("overlays")]
        samples = run.get("samples", [])
        if not rows or not samples:
            continue
        palette = rows[0]["palette"]
        with Image.open(base / samples[0]["image"]) as first:
            aspect = first.height / first.width
        cols = 2 + len(rows)
        fig = _figure(2.6 * cols, 2.6 * aspect * len(samples) + 0.6)
        axes = np.atleast_2d(fig.subplots(len(samples), cols))
        titles = ["frame", "ground truth"] + [textwrap.fill(row_label(r, report), 22) for r in rows]
        for k, sample in enumerate(samples):
            with Image.open(base / sample["image"]) as im:
                image = np.asarray(im.convert("RGB"))
            panels = [image, blend(image, load_label_png(base / sample["label"]), palette)]
            panels += [blend(image, load_label_png(base / r["overlays"][k]), r["palette"]) for r in rows
                       if k < len(r["overlays"])]
            for c, ax in enumerate(axes[k]):
                ax.axis("off")
                if c < len(panels):
                    ax.imshow(panels[c])
                if k == 0:
                    ax.set_title(titles[c], fontsize=8)
        figures.append((f"Predictions on {run['label']}", _png(fig)))
    return figures
