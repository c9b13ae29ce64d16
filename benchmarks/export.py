"""Export every real-time model at 512×1024 and compare ONNX Runtime with torch eager on the CPU.

Per model: export seconds, node count before and after onnxsim, label agreement with torch, and the median
latency (batch 1, same thread count) of ONNX Runtime and of torch eager through the same runner contract
(uint8 NHWC in, labels out). Prints a table and writes ``benchmarks/results/export.json``.

    python benchmarks/export.py [--size 512x1024] [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeseg.cli.args import input_size
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.fileio import write_text_atomic
from edgeseg.models import list_models, model_info
from edgeseg.runtime.environment import collect_environment
from edgeseg.runtime.load import load_runner
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.export")
RESULTS = Path(__file__).resolve().parent / "results" / "export.json"


def median_latency(bundle: Path, backend: str, image: np.ndarray, threads: int, warmup: int, repeats: int):
    with load_runner(bundle, backend, threads=threads) as runner:
        times = []
        for i in range(warmup + repeats):
            labels = runner.infer({"image": image})["labels"]
            if i >= warmup:
                times.append(runner.last_latency_ms)
    return statistics.median(times), labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=input_size, default=(512, 1024), metavar="HxW")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=[n for n in list_models() if model_info(n).realtime])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    image = np.random.default_rng(0).integers(0, 256, (1, *args.size, 3), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.models, 1):
            log.info("[%d/%d] %s at %dx%d", i, len(args.models), name, *args.size)
            bundle = export_bundle(Path(tmp) / name, model_name=name, options=ExportOptions(input_size=args.size))
            m = bundle.manifest.to_dict()  # the manifest as written (JSON)
            ort_ms, ort_labels = median_latency(bundle.root, "onnxruntime", image, args.threads, args.warmup,
                                                args.repeats)
            torch_ms, torch_labels = median_latency(bundle.root, "torch", image, args.threads, args.warmup,
                                                    args.repeats)
            rows.append({"model": name, "export_seconds": m["onnx"]["export_seconds"],
                         "nodes_exported": m["onnx"]["simplify"]["nodes_before"],
                         "nodes_simplified": m["onnx"]["simplify"]["nodes_after"],
                         "label_agreement_verify": m["verification"]["label_agreement"],
                         "label_agreement_bench_image": float(np.mean(ort_labels == torch_labels)),
                         "max_abs_logit_diff": m["verification"]["max_abs_logit_diff"],
                         "onnxruntime_ms": round(ort_ms, 1), "torch_eager_ms": round(torch_ms, 1),
                         "onnxruntime_over_torch": round(ort_ms / torch_ms, 3)})
    result = {"benchmark": "export", "input_size": list(args.size), "batch": 1, "threads": args.threads,
              "weights": "random (structure only; latency and agreement do not depend on training)",
              "statistic": f"median of {args.repeats} after {args.warmup} warm-up",
              "environment": collect_environment(), "models": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    header = ("model", "export s", "nodes", "simplified", "agreement", "ORT ms", "torch ms", "ORT/torch")
    print(render_table(header, [(r["model"], f"{r['export_seconds']:.1f}", r["nodes_exported"], r["nodes_simplified"],
                                 f"{100 * r['label_agreement_verify']:.3f}%", f"{r['onnxruntime_ms']:.1f}",
                                 f"{r['torch_eager_ms']:.1f}", f"{r['onnxruntime_over_torch']:.2f}")
                                for r in rows]))
    env = result["environment"]
    print(f"\n{env['cpu']}, {args.threads} threads, {env['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
