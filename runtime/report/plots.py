"""The report's figures as PNG bytes (matplotlib's object API on the Agg canvas: no pyplot, no display).

matplotlib is optional (``pip install edgeseg[report]``): :func:`available` says whether it is installed, and
the HTML report falls back to tables without it.
"""

from __future__ import annotations

import importlib.util
import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.runtime.agreement import disagreement
from edgeseg.runtime.overlay import blend, load_label_png
from edgeseg.runtime.report.document import confusion_rows, gate_lines, row_label, rows_by_classes
from edgeseg.runtime.report.tables import points_text

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
STAGES = (("preprocess", "#8da0cb"), ("transfer", "#fc8d62"), ("inference", "#66c2a5"), ("postprocess", "#e78ac3"))
# The accuracy axis spans at least this many mIoU points either side of the data (and the gate lines): an
# autoscaled axis over 55.51-55.58 draws a 0.07-point difference as a cliff.
MIOU_MARGIN = 1.0
GATE_COLOUR = "#d62728"
# Latencies spanning more than this ratio (slowest sample over fastest, all rows) go on a log axis, so one slow
# or noisy row does not squash the others into a line at the left edge.
LOG_LATENCY_RATIO = 10.0
MISMATCH = np.array([255, 0, 200], np.uint8)  # disagreement maps: differing pixels, over a dimmed grey frame


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


def accuracy_limits(values: Sequence[float], gates: Sequence[float] = ()) -> tuple[float, float]:
    """The mIoU axis (%): the data and the gate lines with :data:`MIOU_MARGIN` points either side."""
    every = [*values, *gates]
    return min(every) - MIOU_MARGIN, max(every) + MIOU_MARGIN


def accuracy_vs_fps(report: dict) -> bytes | None:
    """mIoU against throughput for every engine with an accuracy figure; each run's Pareto front joined."""
    fig = accuracy_figure(report)
    return None if fig is None else _png(fig)


def accuracy_figure(report: dict):
    """The figure of :func:`accuracy_vs_fps` (None without accuracy figures): the mIoU axis spans at least
    ±:data:`MIOU_MARGIN` points around the data, and each gate (the fp32 reference's mIoU minus the
    calibration's budget) is a dashed line."""
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
    gates = gate_lines(report)
    several = len({g["artifact"] for g in gates}) > 1
    for gate in gates:
        ax.axhline(gate["miou"], color=GATE_COLOUR, linestyle=":", linewidth=1.5, zorder=1,
                   label=f"gate{' ' + gate['model'] if several else ''}: fp32 − {points_text(gate['budget'])}")
    ax.set_ylim(*accuracy_limits([100 * r["accuracy"]["miou"] for r in rows], [g["miou"] for g in gates]))
    fps = [r["throughput"]["fps"] for r in rows]
    if max(fps) / max(min(fps), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"throughput (frames/s, {rows[0]['throughput']['streams']} in flight)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Accuracy against speed (filled: on the Pareto front, dashed: the front)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def latency_distribution(report: dict) -> bytes:
    """Per engine: every latency sample (dots), the p25–p75 box, the p1–p99 whisker and the median."""
    return _png(latency_figure(report))


def _latency_samples(row: dict) -> np.ndarray:
    return np.asarray(row["latency_ms"].get("samples") or [row["latency_ms"]["p50"]], np.float64)


def latency_figure(report: dict):
    """The figure of :func:`latency_distribution`; on a log axis when the latencies span more than
    :data:`LOG_LATENCY_RATIO`."""
    rows = report["rows"]
    fig = _figure(8, 1.0 + 0.45 * len(rows))
    ax = fig.subplots()
    colours = _colours(len(rows))
    rng = np.random.default_rng(0)
    every = np.concatenate([_latency_samples(r) for r in rows])
    positive = every[every > 0]
    log_axis = positive.size > 0 and positive.max() / positive.min() > LOG_LATENCY_RATIO
    for i, row in enumerate(rows):
        samples = _latency_samples(row)
        if log_axis:
            samples = np.maximum(samples, positive.min())  # a 0 ms sample has no place on a log axis
        p1, p25, p50, p75, p99 = np.percentile(samples, [1, 25, 50, 75, 99])
        ax.plot([p1, p99], [i, i], color="0.4", linewidth=1, zorder=1)
        ax.barh(i, p75 - p25, left=p25, height=0.5, color=colours[i], alpha=0.5, zorder=2)
        ax.plot([p50, p50], [i - 0.25, i + 0.25], color="black", linewidth=2, zorder=3)
        ax.scatter(samples, i + rng.uniform(-0.18, 0.18, samples.size), s=4, color=colours[i], alpha=0.5, zorder=4)
    ax.set_yticks(range(len(rows)), [textwrap.fill(row_label(r, report), 40) for r in rows], fontsize=8)
    ax.invert_yaxis()
    if log_axis:
        ax.set_xscale("log")
    ax.set_xlabel("inference latency (ms per batch" + (", log scale: the rows differ by over "
                                                        f"{LOG_LATENCY_RATIO:g}x)" if log_axis else ")"))
    ax.set_title("Latency distribution (box p25–p75, bar p50, line p1–p99)")
    ax.grid(True, axis="x", which="both" if log_axis else "major", alpha=0.3)
    return fig


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


def confusion_matrices(report: dict) -> list[tuple[str, bytes]]:
    """Per run and class list: each engine's confusion matrix, row-normalised (each true class's pixels share
    out over the predicted classes: the diagonal is the class's recall), class names on both axes."""
    figures = []
    for run in report["runs"]:
        groups: dict[tuple, list[dict]] = {}
        for row in confusion_rows(report):
            if row["run"] == run["id"]:
                groups.setdefault(tuple(row["classes"]), []).append(row)
        for classes, rows in groups.items():
            figures.append((f"Confusion matrices on {run['label']} ({len(classes)} classes)",
                            _png(confusion_figure(rows, list(classes), report))))
    return figures


def normalise_rows(matrix) -> np.ndarray:
    """Each row of a confusion matrix over its sum (NaN for a class with no pixels)."""
    counts = np.asarray(matrix, np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


def confusion_figure(rows: list[dict], classes: list[str], report: dict):
    n = len(classes)
    cols = min(len(rows), 3 if n <= 12 else 2)
    grid = -(-len(rows) // cols)
    cell = 0.32 if n > 12 else 0.45
    side = 1.8 + cell * n
    fig = _figure(side * cols + 1.0, side * grid + 0.4)
    axes = np.atleast_1d(fig.subplots(grid, cols, squeeze=False)).ravel()
    image = None
    for ax, row in zip(axes, rows):
        values = normalise_rows(row["accuracy"]["confusion"])
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        ax.set_xlabel("predicted class", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        ax.set_title(textwrap.fill(row_label(row, report), 40), fontsize=8)
        if n <= 12:
            for (t, p), v in np.ndenumerate(values):
                if np.isfinite(v) and v >= 0.005:
                    ax.text(p, t, f"{100 * v:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if v > 0.6 else "black")
    for ax in axes[len(rows):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=list(axes[:len(rows)]), label="share of the true class's pixels", shrink=0.8)
    return fig


def disagreement_picture(image: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The frame dimmed to grey with the pixels whose label differs from the reference's in
    :data:`MISMATCH`."""
    mask, _ = disagreement(labels, reference)
    if image.shape[:2] != mask.shape:  # a frame of another size: the mask alone, over mid grey
        image = np.full((*mask.shape, 3), 128, np.uint8)
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.45 + 60
    out = np.repeat(grey, 3, axis=2).astype(np.uint8)
    out[mask] = MISMATCH
    return out


def disagreement_maps(report: dict, base: Path) -> list[tuple[str, bytes]]:
    """Per run: for each sample and each engine compared with an fp32 reference (``disagreement``), where its
    labels differ from the reference's, captioned with the share of pixels that differ."""
    figures = []
    rows_by_id = {r["id"]: r for r in report["rows"]}
    for run in report["runs"]:
        rows = [r for r in report["rows"] if r["run"] == run["id"] and r.get("disagreement")]
        samples = run.get("samples", [])
        if not rows or not samples:
            continue
        with Image.open(base / samples[0]["image"]) as first:
            aspect = first.height / first.width
        fig = _figure(2.8 * len(rows) + 0.4, (2.8 * aspect + 0.45) * len(samples) + 0.5)
        axes = np.atleast_2d(fig.subplots(len(samples), len(rows), squeeze=False))
        for c, row in enumerate(rows):
            ref = rows_by_id[row["disagreement"]["reference"]]
            fractions = row["disagreement"]["fractions"]
            for k, sample in enumerate(samples):
                ax = axes[k][c]
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= min(len(row["overlays"]), len(ref["overlays"])) or fractions[k] is None:
                    continue
                with Image.open(base / sample["image"]) as im:
                    image = np.asarray(im.convert("RGB"))
                ax.imshow(disagreement_picture(image, load_label_png(base / row["overlays"][k]),
                                               load_label_png(base / ref["overlays"][k])))
                ax.set_xlabel(f"{100 * fractions[k]:.2f}% of pixels differ", fontsize=8)
                if k == 0:
                    ax.set_title(textwrap.fill(f"{row_label(row, report)} against {ref['precision']} "
                                               f"{ref['backend']}", 30), fontsize=8)
        figures.append((f"Where the labels differ from fp32 on {run['label']}", _png(fig)))
    return figures
