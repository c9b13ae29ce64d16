"""FP32 / FP16 / INT8 accuracy and ONNX Runtime CPU latency of the trained synthetic checkpoints.

For each checkpoint and calibration method: export at 256×512, calibrate on synthetic train scenes, gate on
synthetic val scenes (mIoU budget ``--max-miou-drop``), and record every variant's mIoU, drop against fp32,
label agreement with fp32, file size and median ONNX Runtime CPU latency (batch 1); for INT8 also the drop
before the sensitivity search and how many layers it left in float. Writes ``benchmarks/results/int8.json``.

    python benchmarks/int8.py [--models bisenetv2 lednet dfanet_b] [--methods entropy percentile minmax]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from edgeseg.calibration.pipeline import CalibrationOptions
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.workflow import export_with_variants

log = logging.getLogger("benchmarks.int8")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "int8.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2", "lednet", "dfanet_b"])
    parser.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints")
    parser.add_argument("--methods", nargs="+", default=["percentile"])
    parser.add_argument("--calib-size", type=int, default=64)
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--max-miou-drop", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for method in args.methods:
                log.info("== %s, %s calibration", name, method)
                calibration = CalibrationOptions(calib_data=f"synthetic:{args.calib_size}", calib_size=args.calib_size,
                                                 method=method, eval_images=args.eval_images,
                                                 max_miou_drop=args.max_miou_drop)
                out = Path(tmp) / f"{name}_{method}"
                bundle = export_with_variants(out, checkpoint=str(args.checkpoints / f"{name}.pt"),
                                              calibration=calibration)
                m = bundle.manifest.to_dict()  # the manifest as written (JSON)
                sensitivity = out / "sensitivity.json"
                steps = json.loads(sensitivity.read_text())["steps"] if sensitivity.is_file() else []
                int8 = m["variants"]["int8"]
                best = min(steps, key=lambda s: s["miou_drop"]) if steps else {"excluded": []}
                rows.append({
                    "model": name, "method": method, "input_size": m["input"]["size"],
                    "variants": {k: {f: v.get(f) for f in ("miou", "miou_drop", "label_agreement", "bytes",
                                                           "median_latency_ms")} for k, v in m["variants"].items()},
                    "int8_drop_before_search": steps[0]["miou_drop"] if steps else int8["miou_drop"],
                    "int8_layers_left_in_float_by_search": len(best["excluded"]),
                    "search_steps": max(len(steps) - 1, 0),
                    "gate_passed": m["gate"]["passed"]})
    result = {"benchmark": "int8", "eval": f"{args.eval_images} synthetic val scenes",
              "calibration": f"{args.calib_size} synthetic train scenes", "backend": "onnxruntime CPU, batch 1",
              "max_miou_drop": args.max_miou_drop, "environment": collect_environment(), "rows": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    header = ("model", "method", "fp32 mIoU", "fp16 drop", "int8 drop (before search)", "convs in float", "fp32 ms",
              "fp16 ms",
              "int8 ms", "gate")
    lines = [header]
    for r in rows:
        v = r["variants"]
        lines.append((r["model"], r["method"], f"{100 * v['fp32']['miou']:.2f}", f"{v['fp16']['miou_drop']:.2f}",
                      f"{v['int8']['miou_drop']:.2f} ({r['int8_drop_before_search']:.2f})",
                      str(r["int8_layers_left_in_float_by_search"]), f"{v['fp32']['median_latency_ms']:.0f}",
                      f"{v['fp16']['median_latency_ms']:.0f}", f"{v['int8']['median_latency_ms']:.0f}",
                      "PASSED" if r["gate_passed"] else "FAILED"))
    print(render_table(lines[0], lines[1:]))
    print(f"\n{result['environment']['cpu']}, {result['environment']['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
