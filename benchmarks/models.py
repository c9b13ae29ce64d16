"""Params, GFLOPs and torch CPU latency of every registered model at 512×1024.

Latency: eval mode, batch 1, ``torch.inference_mode``, median of ``--repeats`` runs after ``--warmup`` runs,
with 1 thread and with all threads, for the models matching ``--latency-models`` (the classic models take
minutes per forward pass on a 2-core CPU: their rows then carry params and GFLOPs only). Prints a table and
writes ``benchmarks/results/models.json`` with the machine and date.

    python benchmarks/models.py [--size 512x1024] [--repeats 5] [--models 'bisenet*'] [--latency-models '*']
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from edgeseg.cli.args import input_size
from edgeseg.fileio import write_text_atomic
from edgeseg.models import build, count_flops, count_parameters, list_models
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.models")
RESULTS = Path(__file__).resolve().parent / "results" / "models.json"


def latency_ms(model: torch.nn.Module, size: tuple[int, int], threads: int, warmup: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    x = torch.randn(1, getattr(model, "in_channels", 3), *size)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=input_size, default=(512, 1024), metavar="HxW")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="*", help="shell-style name filter")
    parser.add_argument("--latency-models", default="*", help="time only these (shell-style filter)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    all_threads = os.cpu_count() or 1
    rows = []
    names = list_models(args.models)
    for i, name in enumerate(names, 1):
        log.info("[%d/%d] %s at %dx%d", i, len(names), name, *args.size)
        torch.manual_seed(0)
        timed = fnmatch.fnmatchcase(name, args.latency_models)
        with torch.device("cpu" if timed else "meta"):  # counting needs shapes only
            model = build(name, num_classes=19).eval()
        row = {"name": name, "params": count_parameters(model),
               "gflops": round(count_flops(model, args.size) / 1e9, 3),
               "latency_ms_1_thread": None, f"latency_ms_{all_threads}_threads": None}
        if timed:
            row["latency_ms_1_thread"] = round(latency_ms(model, args.size, 1, args.warmup, args.repeats), 1)
            row[f"latency_ms_{all_threads}_threads"] = round(
                latency_ms(model, args.size, all_threads, args.warmup, args.repeats), 1)
        rows.append(row)
    result = {"benchmark": "models", "input_size": list(args.size), "batch": 1, "num_classes": 19,
              "framework": f"torch {torch.__version__} (CPU, eval, inference_mode)", "warmup": args.warmup,
              "repeats": args.repeats, "statistic": "median", "environment": collect_environment(), "models": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")

    threads_key = f"latency_ms_{all_threads}_threads"
    def ms(value):
        return "-" if value is None else f"{value:.1f}"

    print(render_table(["model", "params (M)", "GFLOPs", "ms, 1 thread", f"ms, {all_threads} threads"],
                       [(r["name"], f"{r['params'] / 1e6:.3f}", f"{r['gflops']:.1f}", ms(r["latency_ms_1_thread"]),
                         ms(r[threads_key])) for r in rows], right=(1, 2, 3, 4)))
    env = result["environment"]
    print(f"\n{env['cpu']}, {env['cpu_cores']} cores, torch {torch.__version__}, {env['date']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
