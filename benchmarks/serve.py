"""Triton (``edgeseg serve``) against the same runner called in-process: throughput and latency per concurrency.

The trained bisenetv2 checkpoint (``benchmarks/checkpoints``) is exported with the project's export at a modest
size (256×512 by default). For each concurrency C (1, 4, 16): C client threads send one-frame requests as fast as
they are answered, (a) through ``edgeseg serve`` over HTTP with tritonclient, each thread its own client, and (b)
straight into the runner ``edgeseg serve`` loads (``load_runner``, same backend and threads), from a pool of C
threads sharing it. Latency is each request's round trip as the client sees it (in-process: the call); throughput
is requests over the block's wall time. The server's own counters (``nv_inference_count`` over
``nv_inference_exec_count``) give the rows per batch its dynamic batcher formed. Every answer is checked against
the in-process labels of its frame. The load average is recorded around each block (a shared machine).

    python benchmarks/serve.py [--size 256x512] [--threads 2] [--concurrency 1 4 16] [--requests 64]

Prints a table and writes ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeseg.cli.args import input_size
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.runtime.load import load_runner
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.serve")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "serve.json"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def summary(latencies_ms: list[float], seconds: float, load: tuple[float, float]) -> dict:
    a = np.asarray(latencies_ms)
    return {"requests": len(a), "seconds": round(seconds, 2), "throughput_fps": round(len(a) / seconds, 2),
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "loadavg_before": round(load[0], 2), "loadavg_after": round(os.getloadavg()[0], 2)}


def drive(concurrency: int, requests: int, call) -> tuple[list[float], float]:
    """``requests`` calls of ``call(k)`` from ``concurrency`` threads, each as soon as the last returned."""
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                k = next(todo, None)
            if k is None:
                return
            start = time.perf_counter()
            call(k)
            elapsed = (time.perf_counter() - start) * 1e3
            with lock:
                latencies.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    return latencies, time.perf_counter() - start


class ServedModel:
    """``edgeseg serve BUNDLE`` as a subprocess, with one tritonclient per thread."""

    def __init__(self, bundle: Path, name: str, threads: int, max_batch: int) -> None:
        self.http, grpc, self.metrics = free_ports(3)
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeseg", "serve", str(bundle), "--port", str(self.http), "--grpc-port",
             str(grpc), "--metrics-port", str(self.metrics), "--threads", str(threads), "--max-batch",
             str(max_batch)], stdin=subprocess.DEVNULL)
        self.local = threading.local()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"edgeseg serve exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v2/health/ready", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise SystemExit("edgeseg serve was not ready in 300 s")

    def infer(self, frame: np.ndarray) -> np.ndarray:
        import tritonclient.http as client

        if not hasattr(self.local, "client"):
            self.local.client = client.InferenceServerClient(f"127.0.0.1:{self.http}")
        feed = client.InferInput("image", [1, *frame.shape], "UINT8")
        feed.set_data_from_numpy(frame[None])
        return self.local.client.infer(self.name, [feed]).as_numpy("labels")[0]

    def counters(self) -> tuple[float, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            text = r.read().decode()

        def value(metric: str) -> float:
            m = re.search(rf'^{metric}{{model="{self.name}",version="1"}} (\S+)$', text, re.M)
            return float(m.group(1)) if m else float("nan")

        return value("nv_inference_count"), value("nv_inference_exec_count")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def document(args: argparse.Namespace, rows: list[dict], started: tuple[float, float, float]) -> dict:
    """The results file: settings, machine, date, load and every block measured."""
    versions = {}
    for name in ("nvidia-pytriton", "tritonclient"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"benchmark": "serve", "model": "bisenetv2", "weights": "trained synthetic checkpoint "
            "(benchmarks/checkpoints/bisenetv2.pt)", "input_size": list(args.size), "threads": args.threads,
            "max_batch": args.max_batch, "requests_per_block": args.requests, "warmup": args.warmup,
            "statistic": "per-request round trip as the client sees it (server: tritonclient HTTP, one client per "
                         "thread; in-process: the runner call from a thread pool sharing one runner); throughput = "
                         "requests / block wall time; rows_per_batch from Triton's nv_inference_count / "
                         "nv_inference_exec_count",
            "triton": versions,
            "shared_machine": "other engineers' jobs ran during the measurement; see each block's loadavg",
            "loadavg_start": [round(x, 2) for x in started], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "environment": collect_environment(), "blocks": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=HERE / "checkpoints" / "bisenetv2.pt")
    parser.add_argument("--size", type=input_size, default=(256, 512), metavar="HxW")
    parser.add_argument("--threads", type=int, default=2, help="the runner's CPU threads, both ways")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=64, help="requests per block")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    frames = np.random.default_rng(0).integers(0, 256, (16, *args.size, 3), dtype=np.uint8)
    started = os.getloadavg()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        log.info("== export bisenetv2 at %dx%d", *args.size)
        bundle = export_bundle(Path(tmp) / "bisenetv2", checkpoint=str(args.checkpoint),
                               options=ExportOptions(input_size=args.size))
        with load_runner(bundle.root, threads=args.threads) as runner:
            expected = [runner.infer({"image": f[None]})["labels"][0] for f in frames]
            backend = runner.backend

            def local(k: int) -> None:
                runner.infer({"image": frames[k % len(frames)][None]})

            server = ServedModel(bundle.root, bundle.model.name, args.threads, args.max_batch)
            try:
                def served(k: int) -> None:
                    if not np.array_equal(server.infer(frames[k % len(frames)]), expected[k % len(frames)]):
                        raise SystemExit(f"the server's labels for frame {k % len(frames)} differ from the runner's")

                drive(1, args.warmup, served)
                drive(1, args.warmup, local)
                for c in args.concurrency:
                    for way, call in (("triton http", served), ("in-process", local)):
                        before = server.counters() if way == "triton http" else None
                        load = os.getloadavg()
                        latencies, seconds = drive(c, args.requests, call)
                        row = {"way": way, "concurrency": c, "backend": backend, **summary(latencies, seconds, load)}
                        if before is not None:
                            count, executions = (a - b for a, b in zip(server.counters(), before))
                            row["rows_per_batch"] = round(count / executions, 2) if executions else None
                        rows.append(row)
                        log.info("  %s, concurrency %d: %.1f FPS, p50 %.1f ms, p99 %.1f ms (load %.1f)", way, c,
                                 row["throughput_fps"], row["p50_ms"], row["p99_ms"], row["loadavg_before"])
                        write_text_atomic(args.out, json.dumps(document(args, rows, started), indent=2) + "\n")
            finally:
                server.close()
    result = document(args, rows, started)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    table = [(r["way"], r["concurrency"], r["backend"], f"{r['throughput_fps']:.1f}", f"{r['p50_ms']:.1f}",
              f"{r['p99_ms']:.1f}", "-" if r.get("rows_per_batch") is None else f"{r['rows_per_batch']:.2f}",
              f"{r['loadavg_before']:.1f}/{r['loadavg_after']:.1f}") for r in rows]
    print(render_table(("way", "clients", "runner", "FPS", "p50 ms", "p99 ms", "rows/batch", "load"), table))
    env = result["environment"]
    print(f"\nbisenetv2 {args.size[0]}x{args.size[1]}, {args.threads} runner threads; {env['cpu']}, "
          f"{env.get('cpu_cores')} cores, {env['date']}; Triton via nvidia-pytriton "
          f"{result['triton'].get('nvidia-pytriton')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
