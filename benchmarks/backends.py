"""ONNX Runtime vs OpenVINO vs torch eager on the CPU, on the same files, interleaved, at the same thread count.

Per model (a trained checkpoint from ``benchmarks/checkpoints``, exported with the project's export at 512×1024,
plus the ``--int8-target cpu`` Q/DQ file): for each thread count, every backend's runner is loaded at once and
warmed up, then called in turn (A B C A B C ...) on the same frame, so a change in the machine's load falls on
all of them alike and the ratios stay fair on a shared machine. The fp32 ``model.onnx`` runs on ONNX Runtime and
OpenVINO and its checkpoint on torch; ``model.int8.onnx`` on ONNX Runtime and OpenVINO (torch has no such file).
Latency is the runner's own (inference alone, batch 1); the load average is recorded before and after each
block. Prints a table and writes ``benchmarks/results/backends.json``.

    python benchmarks/backends.py [--models bisenetv2] [--threads 1 2] [--rounds 30]

lednet and dfanet_b: add ``--calib-size 4``. ONNX Runtime's calibrator keeps every tensor of every calibration
image; lednet at 512×1024 with 16 images was OOM-killed at 14.5 GB on a 23 GB machine. The file is rewritten
after every block, so a run stopped part-way keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from edgeseg.calibration.pipeline import CalibrationOptions
from edgeseg.cli.args import input_size
from edgeseg.export.pipeline import ExportOptions
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.backends import auto_onnx_backend
from edgeseg.runtime.environment import collect_environment
from edgeseg.runtime.load import load_runner
from edgeseg.texttable import render_table
from edgeseg.workflow import export_with_variants

log = logging.getLogger("benchmarks.backends")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "backends.json"
FILES = {"fp32": ("model.onnx", ("onnxruntime", "openvino", "torch")),
         "int8": ("model.int8.onnx", ("onnxruntime", "openvino"))}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def interleaved(bundle: Path, precision: str, backends: tuple[str, ...], image: np.ndarray, threads: int,
                warmup: int, rounds: int) -> dict:
    """Every backend's latencies on ``image``, called in turn ``rounds`` times after ``warmup`` calls each."""
    name, _ = FILES[precision]
    with ExitStack() as stack:
        runners = {}
        for b in backends:  # torch runs the bundle's fp32 checkpoint; the others run the named ONNX file
            target = bundle if b == "torch" else bundle / name
            runners[b] = stack.enter_context(load_runner(target, b, precision=precision, threads=threads))
        labels = {}
        for b, runner in runners.items():
            for _ in range(warmup):
                labels[b] = runner.infer({"image": image})["labels"]
        times: dict[str, list[float]] = {b: [] for b in backends}
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        for _ in range(rounds):
            for b, runner in runners.items():
                runner.infer({"image": image})
                times[b].append(runner.last_latency_ms)
        seconds = time.perf_counter() - t0
        load_after = os.getloadavg()
        compute = {b: r.compute for b, r in runners.items()}
    base = percentile(times["onnxruntime"], 50)
    rows = {}
    for b in backends:
        p50 = percentile(times[b], 50)
        rows[b] = {"p50_ms": round(p50, 1), "p99_ms": round(percentile(times[b], 99), 1),
                   "min_ms": round(min(times[b]), 1), "mean_ms": round(float(np.mean(times[b])), 1),
                   "over_onnxruntime": round(p50 / base, 3),
                   "label_agreement_with_onnxruntime": round(float(np.mean(labels[b] == labels["onnxruntime"])), 5),
                   "compute": compute[b], "samples_ms": [round(t, 2) for t in times[b]]}
    return {"file": name + (" (torch: the bundle's model.pt)" if "torch" in backends else ""), "precision": precision,
            "threads": threads, "rounds": rounds, "warmup": warmup, "seconds": round(seconds, 1),
            "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
            "backends": rows}


def document(args: argparse.Namespace, blocks: list[dict], started: tuple[float, float, float]) -> dict:
    """The results file: settings, machine, date, load and every block measured so far."""
    env = collect_environment()
    return {"benchmark": "backends", "input_size": list(args.size), "batch": 1,
           "weights": "trained synthetic checkpoints (benchmarks/checkpoints)",
           "int8_file": "--int8-target cpu (Q/DQ, uint8 activations, int8 weights), "
                        f"calibrated on synthetic:{args.calib_size}",
           "statistic": f"p50/p99 of {args.rounds} interleaved rounds after {args.warmup} warm-up calls each; "
                        "latency is inference alone (runner.last_latency_ms)",
           "openvino_settings": "PERFORMANCE_HINT=LATENCY, INFERENCE_NUM_THREADS=threads, "
                                "INFERENCE_PRECISION_HINT=f32",
           "auto_picks_here": auto_onnx_backend(),
           "shared_machine": "other engineers' jobs ran during the measurement; see each block's loadavg",
           "loadavg_start": [round(x, 2) for x in started], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "environment": env, "blocks": blocks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2"])
    parser.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints")
    parser.add_argument("--size", type=input_size, default=(512, 1024), metavar="HxW")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calib-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    image = np.random.default_rng(0).integers(0, 256, (1, *args.size, 3), dtype=np.uint8)
    blocks = []
    started = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            log.info("== %s: export at %dx%d with the CPU-INT8 variant", name, *args.size)
            calibration = CalibrationOptions(calib_data=f"synthetic:{args.calib_size}", calib_size=args.calib_size,
                                             target="cpu", fp16=False, eval_images=4, max_miou_drop=100.0)
            bundle = export_with_variants(Path(tmp) / name, checkpoint=str(args.checkpoints / f"{name}.pt"),
                                          options=ExportOptions(input_size=args.size), calibration=calibration)
            for threads in args.threads:
                for precision, (_, backends) in FILES.items():
                    log.info("%s %s, %d thread(s): %s interleaved, %d rounds", name, precision, threads,
                             " ".join(backends), args.rounds)
                    block = interleaved(bundle.root, precision, backends, image, threads, args.warmup, args.rounds)
                    blocks.append({"model": name, **block})
                    write_text_atomic(args.out, json.dumps(document(args, blocks, started), indent=2) + "\n")
                    log.info("  %s (load %.2f -> %.2f)", ", ".join(
                        f"{b} {r['p50_ms']} ms" for b, r in block["backends"].items()),
                        block["loadavg_before"][0], block["loadavg_after"][0])
    result = document(args, blocks, started)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    env = result["environment"]
    header = ("model", "file", "threads", "backend", "p50 ms", "p99 ms", "/ORT", "agree", "load")
    table = []
    for block in blocks:
        for b, r in block["backends"].items():
            table.append((block["model"], block["precision"], block["threads"], b, f"{r['p50_ms']:.1f}",
                          f"{r['p99_ms']:.1f}", f"{r['over_onnxruntime']:.2f}",
                          f"{100 * r['label_agreement_with_onnxruntime']:.2f}%",
                          f"{block['loadavg_before'][0]:.1f}/{block['loadavg_after'][0]:.1f}"))
    print(render_table(header, table))
    print(f"\n{env['cpu']}, {env.get('cpu_cores')} cores, {env['date']}; "
          f"onnxruntime {env['packages'].get('onnxruntime')}, openvino {env['packages'].get('openvino')}, "
          f"torch {env['packages'].get('torch')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
