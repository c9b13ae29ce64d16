"""The report document (``report.json``): building it from a bench run, reading it back, and merging runs.

A report folder holds ``report.json``, ``report.md``, ``report.html``, the PNGs the overlays are drawn
from (``samples/``: frames and ground truth; ``predictions/<row id>/``: each engine's label maps) and the
figures the Markdown shows (``figures/``). A merged report copies each source run's PNGs under
``runs/<run id>/`` so it stands alone too, and says so (``notes``) when its runs measured different models,
input sizes or training checkpoints. The schema is documented in docs/bench.md ("report.json").
"""

from __future__ import annotations

import datetime as _dt
import logging
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.fileio import FolderKind, inside, read_json_document
from edgeseg.metrics import miou_drop_points
from edgeseg.runtime.agreement import disagreement
from edgeseg.runtime.bench import BenchResult
from edgeseg.runtime.overlay import load_label_png, save_label_png
from edgeseg.runtime.stats import noise_notes, pareto_front

log = logging.getLogger(__name__)

FORMAT = "edgeseg-bench-report"
FORMAT_VERSION = 1
REPORT_JSON = "report.json"
# What edgeseg may replace as a report folder: one holding only what a report writes.
REPORT_KIND = FolderKind(REPORT_JSON, FORMAT, "edgeseg bench report",
                         lambda _: ("report.md", "report.html", "samples", "predictions", "runs", "figures"))
# mIoU differences under 0.01 points are noise (fp16 vs fp32 differ by a few pixels): ties on the front
FRONT_TOLERANCE = 1e-4


def run_label(environment: dict) -> str:
    """A short name for the machine a run was measured on: the GPU (or Jetson board), else the CPU."""
    jetson = environment.get("jetson") or {}
    if jetson.get("board"):
        mode = (jetson.get("power_mode") or {}).get("name")
        return f"{jetson['board']}" + (f" ({mode})" if mode else "")
    gpus = environment.get("gpus") or []
    if gpus:
        return gpus[0]["name"]
    return f"{environment.get('cpu', 'CPU')} ×{environment.get('cpu_cores', '?')}"


def _reference(row: dict, rows: list[dict]) -> dict | None:
    """The fp32 row a row's drop is measured against: same run and artifact, the same backend if it has one."""
    candidates = [r for r in rows if r["run"] == row["run"] and r["artifact"] == row["artifact"]
                  and r["precision"] == "fp32" and r.get("accuracy")]
    candidates.sort(key=lambda r: (r["backend"] != row["backend"], r["backend"] != "onnxruntime"))
    return candidates[0] if candidates else None


def annotate(report: dict) -> dict:
    """Fill each row's ``miou_drop`` (mIoU points against its fp32 row), ``pareto`` (on its run's
    accuracy/throughput front) and ``noise`` (why its timing is not to be trusted, if it is not)."""
    rows = report["rows"]
    for row in rows:
        acc, ref = row.get("accuracy"), _reference(row, rows)
        row["miou_drop"] = miou_drop_points(ref["accuracy"]["miou"], acc["miou"]) if acc and ref else None
        row["drop_reference"] = ref["id"] if acc and ref else None
        row["noise"] = noise_notes(row)
    for run in report["runs"]:
        members = [r for r in rows if r["run"] == run["id"]]
        points = [(r["throughput"]["fps"], r["accuracy"]["miou"]) if r.get("accuracy") else None for r in members]
        for row, on_front in zip(members, pareto_front(points, FRONT_TOLERANCE)):
            row["pareto"] = on_front
    return report


def build_report(result: BenchResult, out: Path | None) -> dict:
    """The report of one bench run; writes its sample and prediction PNGs under ``out`` (unless None)."""
    run: dict[str, Any] = {"id": "run1", "label": run_label(result.environment), "environment": result.environment,
           "settings": result.settings, "samples": []}
    palette: list = next((r["palette"] for r in result.rows if r.get("palette")), [])
    rows = [{**row, "run": run["id"], "overlays": []} for row in result.rows]
    if out is not None:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        for k, (image, label) in enumerate(result.samples):
            image_path, label_path = f"samples/{k}.jpg", f"samples/{k}.png"
            Image.fromarray(image).save(out / image_path, quality=90)
            save_label_png(out / label_path, label, palette)
            run["samples"].append({"image": image_path, "label": label_path})
        for row in rows:
            for k, labels in enumerate(result.predictions.get(row["id"], [])):
                rel = f"predictions/{row['id']}/{k}.png"
                save_label_png(out / rel, labels, row.get("palette") or palette)
                row["overlays"].append(rel)
    report = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "runs": [run], "rows": rows, "notes": []}
    annotate(report)
    if out is not None:
        add_disagreement(report, out)
    return report


def add_disagreement(report: dict, base: Path) -> None:
    """Each row with sample predictions and an fp32 reference other than itself gets ``disagreement``:
    ``{"reference": row id, "fractions": [share of pixels whose label differs, per sample]}`` (read from the
    label PNGs under ``base``)."""
    rows = {r["id"]: r for r in report["rows"]}
    for row in report["rows"]:
        ref = rows.get(row.get("drop_reference") or "")
        row["disagreement"] = None
        if ref is None or ref is row or not row.get("overlays") or not ref.get("overlays"):
            continue
        fractions = []
        for mine, theirs in zip(row["overlays"], ref["overlays"]):
            where = str(base / REPORT_JSON)
            a, b = load_label_png(inside(base, mine, where)), load_label_png(inside(base, theirs, where))
            fractions.append(round(disagreement(a, b)[1], 6) if a.shape == b.shape else None)
        row["disagreement"] = {"reference": ref["id"], "fractions": fractions}


def load_report(run_dir: str | Path) -> dict:
    """Read and check ``run_dir/report.json``."""
    path = Path(run_dir) / REPORT_JSON
    if not path.is_file():
        raise EdgesegError(f"{run_dir} is not a bench report folder: no {REPORT_JSON}")
    report = read_json_document(path, FORMAT, FORMAT_VERSION, "edgeseg bench report")
    check_report(report, path)
    return report


def check_report(report: dict, where: str | Path) -> None:
    """The structure merging and rendering rely on; a report edited by hand gets one line saying what is off."""
    def bad(what: str) -> EdgesegError:
        return EdgesegError(f"{where}: {what}; write it again with edgeseg bench --report")

    runs, rows = report.get("runs"), report.get("rows")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise bad("no runs")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise bad("no rows")
    notes = report.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise bad("notes must be a list of strings")
    for run in runs:
        samples = run.get("samples", [])
        if not isinstance(run.get("id"), str) or not isinstance(run.get("label"), str):
            raise bad("a run without id or label")
        if not isinstance(samples, list) or not all(
                isinstance(s, dict) and all(isinstance(v, str) for v in s.values()) for s in samples):
            raise bad(f"run {run['id']}: samples must be a list of file names")
    ids = {run["id"] for run in runs}
    for row in rows:
        if not all(isinstance(row.get(k), str) for k in ("id", "run", "model", "precision", "backend", "artifact")):
            raise bad("a row without id, run, model, precision, backend or artifact")
        if row["run"] not in ids:
            raise bad(f"row {row['id']} names run {row['run']!r}, which the report does not have")
        overlays, accuracy = row.get("overlays", []), row.get("accuracy")
        if not isinstance(overlays, list) or not all(isinstance(o, str) for o in overlays):
            raise bad(f"row {row['id']}: overlays must be a list of file names")
        if accuracy is not None and not (isinstance(accuracy, dict) and isinstance(accuracy.get("miou"), (int, float))):
            raise bad(f"row {row['id']}: accuracy without a numeric miou")
        if not isinstance((row.get("throughput") or {}).get("fps"), (int, float)):
            raise bad(f"row {row['id']}: throughput without a numeric fps")
        latency = row.get("latency_ms")
        if not (isinstance(latency, dict) and all(isinstance(latency.get(k), (int, float)) for k in ("p50", "p99"))):
            raise bad(f"row {row['id']}: latency_ms without numeric p50 and p99")


def _copy_file(src_dir: Path, rel: str, out: Path, prefix: str) -> str:
    src = inside(src_dir, rel, str(src_dir / REPORT_JSON))  # paths in a report are untrusted
    dest = f"{prefix}/{Path(rel).as_posix()}"
    if not src.is_file():
        raise EdgesegError(f"{src} is listed in {src_dir / REPORT_JSON} but missing")
    (out / dest).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / dest)
    return dest


def merge_reports(run_dirs: list[str | Path], out: Path) -> dict:
    """One report from several report folders (say a Jetson's and a desktop GPU's); every run keeps its own
    environment, and its PNGs are copied under ``out/runs/<run id>/``."""
    if not run_dirs:
        raise EdgesegError("give at least one bench report folder")
    merged: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "runs": [], "rows": [],
              "notes": []}
    labels: dict[str, int] = {}
    for run_dir in map(Path, run_dirs):
        report = load_report(run_dir)
        for run in report["runs"]:
            new_id = f"run{len(merged['runs']) + 1}"
            prefix = f"runs/{new_id}"
            run = {**run, "id": new_id, "source": str(run_dir), "original_id": run["id"],
                   "samples": [{k: _copy_file(run_dir, v, out, prefix) for k, v in s.items()}
                               for s in run.get("samples", [])]}
            labels[run["label"]] = labels.get(run["label"], 0) + 1
            if labels[run["label"]] > 1:
                run["label"] = f"{run['label']} #{labels[run['label']]}"
            merged["runs"].append(run)
            for row in report["rows"]:
                if row["run"] == run["original_id"]:
                    merged["rows"].append({**row, "run": new_id, "id": f"{new_id}-{row['id']}",
                                           "overlays": [_copy_file(run_dir, o, out, prefix)
                                                        for o in row.get("overlays", [])]})
            merged["notes"] += [n for n in report.get("notes", []) if n not in merged["notes"]]
    merged["notes"] += unlike_runs(merged)
    for note in merged["notes"]:
        log.warning("%s", note)
    annotate(merged)
    add_disagreement(merged, out)
    return merged


def _checkpoint_text(source) -> str | None:
    if not isinstance(source, dict):
        return None
    sha, name = source.get("sha256"), source.get("checkpoint")
    if isinstance(sha, str):
        return f"{name or 'checkpoint'} (sha256 {sha[:12]})"
    return name if isinstance(name, str) else None


def unlike_runs(report: dict) -> list[str]:
    """One note per way the runs of a merged report differ in what they measured (the models, the input
    sizes, the training checkpoints: compare machines only on like rows); none when they agree."""
    if len(report["runs"]) < 2:
        return []
    facts = {"models": lambda r: r["model"],
             "input sizes": lambda r: "x".join(map(str, r.get("input_size") or [])) or None,
             "training checkpoints": lambda r: _checkpoint_text(r.get("source"))}
    notes = []
    for what, get in facts.items():
        per_run = {run["id"]: sorted({v for r in report["rows"] if r["run"] == run["id"] and (v := get(r))})
                   for run in report["runs"]}
        known = {k: v for k, v in per_run.items() if v}
        if len({tuple(v) for v in known.values()}) > 1:
            listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in known.items())
            notes.append(f"these runs measured different {what} ({listing}): compare rows, not machines")
    return notes


def row_label(row: dict, report: dict) -> str:
    """``model precision backend``, with the run's machine when the report holds several runs, and what an fp16
    row really computed in when the backend said f32."""
    label = f"{row['model']} {row['precision']} {row['backend']}"
    if row["precision"] == "fp16" and str(row.get("compute") or "").startswith("f32"):
        label += " (computes in f32)"  # OpenVINO's CPU plugin widens an fp16 file's weights
    twins = [r for r in report["rows"] if r["run"] == row["run"] and r["model"] == row["model"]
             and r["precision"] == row["precision"] and r["backend"] == row["backend"]]
    if len(twins) > 1:
        label += f" ({Path(row['artifact']).name}, {'x'.join(map(str, row['input_size']))})"
    if len(report["runs"]) > 1:
        run = next(r for r in report["runs"] if r["id"] == row["run"])
        label += f" @ {run['label']}"
    return label


def rows_by_classes(report: dict) -> dict[tuple, list[dict]]:
    """The scored rows grouped by their class list (engines of different datasets cannot share a table)."""
    groups: dict[tuple, list[dict]] = {}
    for row in report["rows"]:
        if row.get("accuracy"):
            groups.setdefault(tuple(row["classes"]), []).append(row)
    return groups


def gate_lines(report: dict) -> list[dict]:
    """Where the accuracy gate sits for each run and bundle whose calibration recorded a budget: ``{"run",
    "artifact", "model", "reference" (row id), "budget" (mIoU points), "miou" (%: the fp32 reference's mIoU on
    this bench's data minus the budget)}``."""
    lines, seen = [], set()
    for row in report["rows"]:
        budget = (row.get("quantization") or {}).get("budget_points")
        key = (row["run"], row["artifact"])
        if not isinstance(budget, (int, float)) or key in seen:
            continue
        # the gate scored its variants with ONNX Runtime: its fp32 row is the reference where there is one
        ref = _reference({**row, "backend": "onnxruntime"}, report["rows"])
        if ref is None:
            continue
        seen.add(key)
        lines.append({"run": row["run"], "artifact": row["artifact"], "model": row["model"], "reference": ref["id"],
                      "budget": float(budget), "miou": 100 * ref["accuracy"]["miou"] - float(budget)})
    return lines


def confusion_rows(report: dict) -> list[dict]:
    """The scored rows whose accuracy holds a confusion matrix of the size of their class list."""
    return [r for r in report["rows"] if r.get("accuracy") and isinstance(r["accuracy"].get("confusion"), list)
            and len(r["accuracy"]["confusion"]) == len(r.get("classes") or [])]
