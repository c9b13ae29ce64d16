"""How ``bench``, ``report`` and ``demo`` print a bench report: the ``--json`` summary, and what the table's
mIoU was measured on (pure, no torch)."""

from __future__ import annotations


def summary_rows(report: dict) -> list[dict]:
    """The report's rows without their bulky parts (latency samples, per-class IoU, palettes): the ``--json``
    result."""
    rows = []
    for row in report["rows"]:
        row = {k: v for k, v in row.items() if k not in ("classes", "palette")}
        if isinstance(row.get("latency_ms"), dict):
            row["latency_ms"] = {k: v for k, v in row["latency_ms"].items() if k != "samples"}
        if isinstance(row.get("accuracy"), dict):
            row["accuracy"] = {k: v for k, v in row["accuracy"].items() if k != "per_class_iou"}
        rows.append(row)
    return rows


def miou_note(report: dict) -> str | None:
    """What the table's mIoU was measured on: images, dataset, resolution and backends (None without data)."""
    scored = [r for r in report["rows"] if r.get("accuracy")]
    if not scored:
        return None
    accs = [r["accuracy"] for r in scored]
    images = " / ".join(str(n) for n in sorted({a["images"] for a in accs}))
    data = " / ".join(sorted({f"{a['data']} ({a['split']})" for a in accs}))
    sizes = " / ".join(sorted({"x".join(map(str, r["input_size"])) for r in scored}))
    backends = ", ".join(sorted({r["backend"] for r in scored}))
    return (f"mIoU: {images} images of {data} per engine, each fitted to the engine's {sizes} input and scored at "
            f"the image's own size; backend per row ({backends})")
