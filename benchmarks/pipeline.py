"""The stream pipeline with 1, 2 and 4 frames in flight: FPS, per-stage times and the overlap gained.

Frames come from memory (generated once at the deploy size, so neither decoding nor resizing is measured) and go
to a null sink; what is measured is preprocessing, H2D, inference, D2H and postprocessing with K frames in
flight on K CUDA streams (``--device cuda``, torch fp16 by default, the reference measurement) or K threads
on a CPU. "overlap" is FPS with K in flight over FPS with one; "hidden" is the share of the summed per-frame stage
times that ran concurrently with other frames (0 when nothing overlaps).

    python benchmarks/pipeline.py --device cuda --size 1024x2048 --precision fp16 [--cuda-graph]
    python benchmarks/pipeline.py --device cpu --size 256x512 --precision fp32 --frames 60     # CPU smoke

Weights are random unless ``--checkpoint`` is given (speed does not depend on them). Writes
``benchmarks/results/pipeline_<device>.json`` with the machine and date.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from edgeseg.cli.args import input_size
from edgeseg.fileio import write_text_atomic
from edgeseg.models import create, save_checkpoint
from edgeseg.runtime.bundle import Bundle
from edgeseg.runtime.environment import collect_environment
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo
from edgeseg.runtime.pipeline import StreamPipeline
from edgeseg.runtime.sinks import NullSink
from edgeseg.runtime.sources import Frame, FrameSource
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.pipeline")
RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("preprocess", "h2d", "inference", "d2h", "postprocess")


class MemorySource(FrameSource):
    """``count`` frames cycled from a few generated images."""

    def __init__(self, size: tuple[int, int], count: int) -> None:
        super().__init__("memory")
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(4)]
        self.count = count

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.count):
            yield Frame(i, self.images[i % len(self.images)], str(i))


def checkpoint_bundle(root: Path, model: str, checkpoint: Path | None, size: tuple[int, int]) -> Path:
    """A bundle holding only a checkpoint (all the torch backends need)."""
    if checkpoint is None:
        checkpoint = save_checkpoint(root / "model.pt", create(model, num_classes=19), name=model)
    else:
        (root / "model.pt").write_bytes(checkpoint.read_bytes())
    classes = [f"class{i}" for i in range(19)]
    bundle = Bundle(root, Manifest(ModelInfo(model, classes), InputSpec(size)))
    bundle.add_file("model.pt", "checkpoint", precision="fp32")
    bundle.save()
    return root


def measure(bundle: Path, args: argparse.Namespace, streams: int) -> dict:
    runner = load_runner(bundle, "torch", precision=args.precision, device=args.device, streams=streams,
                         cuda_graph=args.cuda_graph, threads=args.threads)
    with runner:
        for count in (args.warmup, args.frames):
            summary = StreamPipeline(runner, MemorySource(args.size, count), NullSink("null", []),
                                     streams=streams).run()
        device_mib = runner.device_memory_mib()
    stages = {name: summary["stages_ms"][name]["mean"] for name in STAGES if name in summary["stages_ms"]}
    serial_ms = sum(stages.values())
    frame_ms = 1e3 / summary["fps"]
    return {"streams": streams, "fps": summary["fps"], "frames": summary["frames_out"],
            "stages_ms": stages, "end_to_end_ms": summary["glass_to_glass_ms"],
            "serial_ms_per_frame": round(serial_ms, 3), "wall_ms_per_frame": round(frame_ms, 3),
            "hidden": round(max(0.0, 1 - frame_ms / serial_ms), 3) if serial_ms else 0.0,
            "device_peak_mib": None if device_mib is None else round(device_mib, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bisenetv2")
    parser.add_argument("--checkpoint", type=Path, help="trained weights (default: random)")
    parser.add_argument("--size", type=input_size, default=(1024, 2048), help="HxW (default 1024x2048)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp16")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, help="CPU threads per stream (CPU runs)")
    parser.add_argument("--out", type=Path, help="JSON path (default results/pipeline_<device>.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = checkpoint_bundle(Path(tmp), args.model, args.checkpoint, args.size)
        for streams in args.streams:
            start = time.perf_counter()
            rows.append(measure(bundle, args, streams))
            log.info("%d in flight: %.1f FPS (%.0f s)", streams, rows[-1]["fps"], time.perf_counter() - start)
    base = rows[0]["fps"]
    for row in rows:
        row["overlap"] = round(row["fps"] / base, 3)
    env = collect_environment()
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else env["cpu"]
    result = {"benchmark": "pipeline", "model": args.model, "weights": str(args.checkpoint or "random"),
              "input_size": list(args.size), "device": device, "backend": f"torch on {args.device}",
              "precision": args.precision, "cuda_graph": args.cuda_graph, "frames": args.frames,
              "environment": env, "rows": rows}
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    write_text_atomic(args.out or RESULTS / f"pipeline_{kind}.json", json.dumps(result, indent=2) + "\n")
    header = ("in flight", "FPS", "overlap", *(f"{s} ms" for s in STAGES), "e2e p50 ms", "hidden")
    lines = [(str(r["streams"]), f"{r['fps']:.1f}", f"{r['overlap']:.2f}x",
              *(f"{r['stages_ms'][s]:.2f}" if s in r["stages_ms"] else "-" for s in STAGES),
              f"{r['end_to_end_ms']['p50']:.1f}", f"{100 * r['hidden']:.0f}%") for r in rows]
    print(render_table(header, lines, right=tuple(range(1, len(header)))))
    print(f"\n{args.model} {args.precision} {'x'.join(map(str, args.size))} on {device}, {env['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
