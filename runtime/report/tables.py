"""The report's tables as (header, rows of strings), shared by the Markdown and HTML writers."""

from __future__ import annotations

from collections.abc import Callable

from edgeseg.runtime.report.document import row_label, rows_by_classes
from edgeseg.runtime.stats import noise_notes

Table = tuple[list[str], list[list[str]]]


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def points(value) -> str:
    """mIoU points with two decimals; a difference that rounds to zero prints as 0.00, never -0.00."""
    if value is None:
        return "-"
    return f"{0.0 if abs(value) < 0.005 else value:.2f}"


def points_text(value: float) -> str:
    """``1 point``, ``0.5 points``."""
    return f"{value:g} point" + ("" if value == 1 else "s")


def _mib(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def speed_table(report: dict) -> Table:
    streams = sorted({r["throughput"]["streams"] for r in report["rows"]})
    header = ["engine", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms",
              f"FPS ({'/'.join(map(str, streams))} in flight)", "end-to-end FPS", "pre ms", "transfer ms",
              "inference ms", "post ms", "timing", "noise"]
    rows = []
    for r in report["rows"]:
        lat, st = r["latency_ms"], r["stages_ms"]
        rows.append([row_label(r, report), _ms(lat["p50"]), _ms(lat.get("p90")), _ms(lat["p99"]),
                     _ms(lat.get("mean")), _ms(lat.get("min")), f"{r['throughput']['fps']:.1f}",
                     f"{r['end_to_end_fps']:.1f}", _ms(st.get("preprocess")), _ms(st.get("transfer")),
                     _ms(st.get("inference")), _ms(st.get("postprocess")), r["timing"], noise_text(r)])
    return header, rows


def noise_text(row: dict) -> str:
    """The noise column: ⚠ and why, when the row's timing is not to be trusted; empty otherwise."""
    notes = noise_notes(row)
    return "⚠ " + "; ".join(notes) if notes else ""


def _names(names: list[str], shown: int = 6) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", … (+{more})" if more > 0 else "")


def _float_layers(q: dict) -> str:
    if q.get("kept_fp32_ops"):
        return "ops kept in fp32: " + _names(q["kept_fp32_ops"])
    layers, searched = q.get("float_layers") or [], q.get("searched_float_layers") or []
    if not layers:
        return "-"
    head = [n for n in layers if n not in searched]
    text = f"{len(searched)} by the search" + (f" ({_names(searched)})" if searched else "")
    return text + f"; {len(head)} at the head and after ({_names(head, 3)})"


def _gate_here(row: dict, q: dict) -> str:
    budget, drop = q.get("budget_points"), row.get("miou_drop")
    if not isinstance(budget, (int, float)) or drop is None:
        return "-"
    return (f"within ({points(drop)} ≤ {budget:g})" if drop <= budget
            else f"OVER ({points(drop)} > {budget:g})")


def quantization_table(report: dict) -> Table:
    """Per fp16/int8 engine: its label agreement with fp32 (on this bench's data, and as the calibration
    measured it), the mIoU drop, the gate's budget and verdict (the calibration's, and on this data), and the
    layers left in float."""
    header = ["engine", "label agreement with fp32", "agreement at calibration", "drop (points)", "budget",
              "gate at calibration", "gate on this data", "layers in float"]
    rows = []
    for r in report["rows"]:
        q, agreement = r.get("quantization") or {}, r.get("agreement")
        if r["precision"] == "fp32" or not (q or agreement):
            continue
        here = (f"{100 * agreement['label_agreement']:.2f}% ({agreement['images']} images)"
                if isinstance(agreement, dict) else "-")
        calib = "-"
        if isinstance(q.get("label_agreement"), (int, float)):
            calib = f"{100 * q['label_agreement']:.2f}%" + (
                f" ({q['eval_images']} images of {q['eval_data']})" if q.get("eval_images") else "")
        verdict = {"pass": "pass", "fail": "FAIL"}.get(str(q.get("verdict")), "not scored" if q else "-")
        if q.get("verdict") and isinstance(q.get("miou_drop"), (int, float)):
            verdict += f" (drop {points(q['miou_drop'])})"
        budget = q.get("budget_points")
        rows.append([row_label(r, report), here, calib, points(r.get("miou_drop")),
                     points_text(budget) if isinstance(budget, (int, float)) else "-", verdict,
                     _gate_here(r, q), _float_layers(q)])
    return header, rows


def disagreement_table(report: dict) -> Table:
    """Per engine compared with an fp32 reference: the share of pixels whose label differs, per sample."""
    rows_with = [r for r in report["rows"] if r.get("disagreement")]
    count = max((len(r["disagreement"]["fractions"]) for r in rows_with), default=0)
    header = ["engine", "reference"] + [f"sample {k}" for k in range(count)]
    by_id = {r["id"]: r for r in report["rows"]}
    rows = []
    for r in rows_with:
        fractions = r["disagreement"]["fractions"]
        ref = by_id.get(r["disagreement"]["reference"])
        rows.append([row_label(r, report), row_label(ref, report) if ref else "-"]
                    + [f"{100 * f:.2f}%" if isinstance(f, (int, float)) else "-" for f in fractions]
                    + ["-"] * (count - len(fractions)))
    return header, rows


def legend_table(classes: list[str], palette) -> Table:
    """Class index, name and colour (hex) of one class list."""
    return ["index", "class", "colour"], [[str(k), name, hex_colour(palette, k)] for k, name in enumerate(classes)]


def hex_colour(palette, k: int) -> str:
    """Class ``k``'s palette colour as ``#rrggbb`` (black for a class the palette does not cover)."""
    r, g, b = (int(v) for v in palette[k]) if k < len(palette) else (0, 0, 0)
    return f"#{r:02x}{g:02x}{b:02x}"


def accuracy_table(report: dict) -> Table:
    header = ["engine", "mIoU %", "drop (points)", "pixel acc %", "Pareto", "file MiB", "peak RSS MiB",
              "RSS increase MiB", "device MiB", "load s", "input", "batch"]
    rows = []
    for r in report["rows"]:
        acc, mem = r.get("accuracy") or {}, r["memory"]
        rows.append([row_label(r, report), _pct(acc.get("miou")), points(r.get("miou_drop")),
                     _pct(acc.get("pixel_acc")), "★" if r.get("pareto") else "", _mib(r["file_mib"]),
                     _mib(mem.get("host_peak_rss_mib")), _mib(mem.get("host_rss_increase_mib")),
                     _mib(mem.get("device_peak_mib")), _ms(r["load_s"]), "x".join(map(str, r["input_size"] or ["-"])),
                     str(r["batch"])])
    return header, rows


def class_tables(report: dict) -> list[Table]:
    """Per-class IoU (%) with one column per engine, one table per distinct class list."""
    tables = []
    for classes, rows in rows_by_classes(report).items():
        header = ["class"] + [row_label(r, report) for r in rows]
        body = [[name] + [_pct(r["accuracy"]["per_class_iou"][i]) for r in rows] for i, name in enumerate(classes)]
        tables.append((header, body))
    return tables


def _gpu_text(env: dict) -> str:
    gpus = env.get("gpus") or []
    if not gpus:
        return "none"
    g = gpus[0]
    return f"{g['name']} (driver {g.get('driver')}, compute capability {g.get('compute_capability')})"


def _jetson_text(env: dict) -> str:
    j = env.get("jetson")
    if not j:
        return "-"
    parts = [j.get("board") or "Jetson", j.get("l4t") or ""]
    if j.get("power_mode"):
        parts.append(f"power mode {j['power_mode'].get('name')} ({j['power_mode'].get('id')})")
    if j.get("gpu_clock_mhz"):
        parts.append(f"GPU {j['gpu_clock_mhz'].get('cur')} MHz (max {j['gpu_clock_mhz'].get('max')})")
    return ", ".join(p for p in parts if p)


def environment_table(report: dict) -> Table:
    """One column per run: the machine, its software and the bench settings."""
    header = [""] + [f"{run['id']}: {run['label']}" for run in report["runs"]]
    fields: list[tuple[str, Callable[[dict], str]]] = [
        ("date", lambda run: run["environment"].get("date", "-")),
        ("CPU", lambda run: f"{run['environment'].get('cpu')} ({run['environment'].get('cpu_cores')} cores)"),
        ("GPU", lambda run: _gpu_text(run["environment"])),
        ("CUDA (driver)", lambda run: run["environment"].get("cuda_driver") or "-"),
        ("Jetson", lambda run: _jetson_text(run["environment"])),
        ("OS / Python", lambda run: f"{run['environment'].get('os')} / {run['environment'].get('python')}"),
    ]
    for package in ("tensorrt", "onnxruntime", "onnxruntime-gpu", "torch", "edgeseg"):
        fields.append((package, _package_version(package)))
    fields.append(("settings", _settings_text))
    return header, [[name] + [str(get(run)) for run in report["runs"]] for name, get in fields]


def _package_version(package: str) -> Callable[[dict], str]:
    return lambda run: run["environment"].get("packages", {}).get(package, "-")


def _settings_text(run: dict) -> str:
    s = run.get("settings", {})
    data = f"{s.get('data')} ({s.get('split')})" if s.get("data") else "none (noise frames, no accuracy)"
    return (f"warm-up {s.get('warmup')}, {s.get('iters')} timed iterations, {s.get('streams')} in flight, "
            f"threads {s.get('threads') or 'all'}, data {data}")


def summary_table(report: dict) -> str:
    """The table ``edgeseg bench`` and ``edgeseg report`` print: one row per engine."""
    from edgeseg.texttable import render_table

    rows = []
    for r in report["rows"]:
        acc = r.get("accuracy")
        rows.append((row_label(r, report), f"{r['latency_ms']['p50']:.2f}", f"{r['latency_ms']['p99']:.2f}",
                     f"{r['throughput']['fps']:.1f}", f"{100 * acc['miou']:.2f}" if acc else "-",
                     points(r.get("miou_drop")), _mib(r["file_mib"]), "★" if r.get("pareto") else ""))
    header = ("engine", "p50 ms", "p99 ms", "FPS", "mIoU", "drop", "MiB", "front")
    return render_table(header, rows, right=(1, 2, 3, 4, 5, 6))
