"""The report's tables as (header, rows of strings), shared by the Markdown and HTML writers."""

from __future__ import annotations

from collections.abc import Callable

from edgeseg.runtime.report.document import row_label, rows_by_classes

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


def _mib(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def speed_table(report: dict) -> Table:
    streams = sorted({r["throughput"]["streams"] for r in report["rows"]})
    header = ["engine", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms",
              f"FPS ({'/'.join(map(str, streams))} in flight)", "end-to-end FPS", "pre ms", "transfer ms",
              "inference ms", "post ms", "timing"]
    rows = []
    for r in report["rows"]:
        lat, st = r["latency_ms"], r["stages_ms"]
        rows.append([row_label(r, report), _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]), _ms(lat["mean"]),
                     _ms(lat["min"]), f"{r['throughput']['fps']:.1f}", f"{r['end_to_end_fps']:.1f}",
                     _ms(st.get("preprocess")), _ms(st.get("transfer")), _ms(st.get("inference")),
                     _ms(st.get("postprocess")), r["timing"]])
    return header, rows


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
