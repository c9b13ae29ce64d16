"""``edgeseg run BUNDLE --source SPEC [--source SPEC ...]``: segment videos, cameras or image streams with K
batches in flight, one frame per source per batch, each source into its own sink."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from edgeseg.cli.args import positive_int, torch_device_or_auto
from edgeseg.cli.common import DEVICE_HELP, PRECISION_DEFAULT, add_json, examples
from edgeseg.runtime.backends import BACKEND_CHOICES, PRECISIONS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="a bundle folder (or a model file inside one)")
    io = parser.add_argument_group("sources and sinks")
    io.add_argument("--source", required=True, action="append",
                    help="image folder, video file, camera:N, gst:PIPELINE (Jetson CSI: see the README) or "
                         "rtsp:// URL; repeat for several cameras run as one batch (a bundle exported with "
                         "--batch-size N for N sources, or --dynamic-batch)")
    io.add_argument("--sink", action="append",
                    help="OUT.mp4 (overlay video), labels:DIR, overlays:DIR, frames:DIR (the input frames), window, "
                         "or null (default); with several sources one --sink per --source, paired in order (none: "
                         "null for each)")
    io.add_argument("--depth", metavar="DIR",
                    help="RGB-D models (acnet): depth maps paired by file stem with an image folder source "
                         "(16-bit PNG in mm or .npy in m)")
    io.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                    help="keep only the newest frame of each source, counting the frames overwritten as stale "
                         "(default: on for cameras, gst: and network streams, off for files and folders; "
                         "--no-live keeps every frame)")
    io.add_argument("--max-frames", type=positive_int, metavar="N",
                    help="stop after N frames of each source (default: all of them, or until Ctrl-C)")
    io.add_argument("--no-legend", action="store_true",
                    help="leave the class legend strip off OUT.mp4 and window frames")
    io.add_argument("--overwrite", action="store_true",
                    help="let an OUT.mp4 sink replace an existing file (never the source)")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="auto (default): the bundle's TensorRT engine when TensorRT is usable, else its ONNX "
                             "with OpenVINO on an x86 CPU when installed, else ONNX Runtime")
    engine.add_argument("--precision", choices=PRECISIONS, default=PRECISION_DEFAULT,
                        help=f"which variant of the bundle runs (default {PRECISION_DEFAULT})")
    engine.add_argument("--device", type=torch_device_or_auto, default="auto",
                        help=f"where --backend torch runs: {DEVICE_HELP} (default auto; fp32 or fp16 on CUDA streams)")
    engine.add_argument("--streams", type=positive_int, default=1,
                        help="frames (batches, with several sources) in flight (default 1)")
    engine.add_argument("--threads", type=positive_int,
                        help="CPU threads per stream (default: the cores shared among the streams)")
    engine.add_argument("--cuda-graph", action="store_true",
                        help="TensorRT and torch on CUDA: replay each stream's work as a CUDA graph")
    engine.add_argument("--crf", nargs="?", const="conv", choices=("conv", "dense"),
                        help="CRF post-processing: conv (ConvCRF, when given alone; the bundle's fused "
                             "model.crf.onnx or crf.onnx chained after the model; needs edgeseg export --crf) or "
                             "dense (Krähenbühl's dense CRF on the CPU, pydensecrf2: the slow quality reference); "
                             "default: none")
    add_json(parser, "the run's summary")
    examples(parser,
             "edgeseg run demo/bundle-bisenetv2 --source clip.mp4 --sink overlay.mp4",
             "edgeseg run b --source camera:0 --sink window --precision fp16 --streams 2",
             "edgeseg run b --source frames/ --sink labels:out/ --max-frames 100 --json",
             "edgeseg run b --source camera:0 --source camera:1 --sink a.mp4 --sink b.mp4   # one batch of 2")


class StatusLine:
    """A live line on a terminal (FPS, latency, dropped frames); a log line every few seconds otherwise."""

    def __init__(self, stream=None, log_every: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr  # the stream at call time, not import time
        self.live = self.stream.isatty()
        self.log_every, self.last_log = log_every, 0.0

    def __call__(self, s: dict) -> None:
        latency = "-" if s["latency_ms"] is None else f"{s['latency_ms']:.1f} ms"
        text = (f"{s['frames']} frames  {s['fps']:.1f} FPS  latency {latency}  dropped {s['dropped']}  "
                f"in flight {s['in_flight']}")
        if self.live:
            self.stream.write("\r" + text.ljust(79))
            self.stream.flush()
        elif s["elapsed_s"] - self.last_log >= self.log_every:
            log.info(text)
            self.last_log = s["elapsed_s"]

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")


def _ms(stats: dict | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.1f}"


def format_summary(summary: dict) -> str:
    """The run summary as text: a head line, glass-to-glass latency and queue waits, the stage table and, with
    several sources, one row per source."""
    from edgeseg.texttable import render_table

    batch = summary["batch"]
    head = (f"{summary['frames_out']} of {summary['frames_in']} frames in {summary['seconds']:.1f} s: "
            f"{summary['fps']:.1f} FPS with {summary['streams']} in flight"
            + (f", batches of {batch}" if batch != 1 else "")
            + f"; {summary['dropped']} dropped by the source"
            + (f"; {summary['stale']} stale (live: newer frames came first)" if summary["stale"] else "")
            + ("; stopped by a signal (Ctrl-C or SIGTERM)" if summary["interrupted"] else ""))
    glass, waits = summary["glass_to_glass_ms"], summary["queue_wait_ms"]
    lines = [head]
    if glass:
        lines.append(f"glass to glass (capture to sink written): p50 {glass['p50']:.1f} ms, p95 {glass['p95']:.1f} "
                     f"ms, p99 {glass['p99']:.1f} ms; queue wait: capture to batch {_ms(waits.get('to_batch'), 'p50')}"
                     f" ms, results to sink {_ms(waits.get('to_sink'), 'p50')} ms (p50)")
    rows = [(name, f"{s['mean']:.2f}", f"{s['p50']:.2f}", f"{s['p99']:.2f}")
            for name, s in summary["stages_ms"].items()]
    lines.append(render_table(("stage", "mean ms", "p50 ms", "p99 ms"), rows, right=(1, 2, 3)))
    if len(summary["sources"]) > 1:
        rows = [(s["source"], s["sink"], str(s["frames_in"]), str(s["frames_out"]), str(s["dropped"]),
                 str(s["stale"]), str(s["missed_steps"]), str(s["reopened"]), _ms(s["glass_to_glass_ms"], "p50"),
                 _ms(s["glass_to_glass_ms"], "p95"), _ms(s["glass_to_glass_ms"], "p99")) for s in summary["sources"]]
        lines.append(render_table(("source", "sink", "in", "out", "dropped", "stale", "missed", "reopened",
                                   "g2g p50", "p95", "p99"), rows, right=tuple(range(2, 11))))
    return "\n".join(lines)


def _sink_specs(args: argparse.Namespace) -> list[str]:
    """One sink spec per source: as given (counts must match), or null for each when none is given."""
    sinks = args.sink or ["null"] * len(args.source)
    if len(sinks) != len(args.source):
        from edgeseg.errors import EdgesegError

        raise EdgesegError(f"{len(args.source)} --source and {len(sinks)} --sink: give one --sink per --source, "
                           f"paired in order (or none: null for each)")
    return sinks


def _refuse_shared_targets(sinks) -> None:
    """Two sinks may not write the same file or folder."""
    from edgeseg.errors import EdgesegError

    seen: dict = {}
    for sink in sinks:
        if sink.target is None:
            continue
        key = sink.target.resolve()
        if key in seen:
            raise EdgesegError(f"--sink {seen[key]} and --sink {sink.name} write to the same place; give each "
                               f"source its own")
        seen[key] = sink.name


def main(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.bundle import open_bundle
    from edgeseg.runtime.crf import load_crf_runner
    from edgeseg.runtime.load import load_runner
    from edgeseg.runtime.pipeline import StreamPipeline
    from edgeseg.runtime.sinks import open_sink
    from edgeseg.runtime.sources import open_source

    sink_specs = _sink_specs(args)
    several = len(args.source) > 1
    if args.device not in ("cpu", "auto") and args.backend != "torch":
        raise EdgesegError("--device is where the torch backend runs: add --backend torch")
    bundle = open_bundle(args.bundle)
    palette = bundle.model.palette
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.streams) if args.streams > 1 else None)
    if bundle.takes_depth and not args.depth:
        raise EdgesegError(f"{bundle.model.name} is an RGB-D model: give --depth DIR with an image folder source")
    if args.depth and not bundle.takes_depth:
        raise EdgesegError(f"--depth: this bundle ({bundle.model.name}) takes no depth; it is an RGB model")
    if args.depth and several:
        raise EdgesegError("--depth pairs depth maps with one image folder source; give one --source")
    if args.crf and bundle.takes_depth:
        raise EdgesegError("--crf takes RGB models; this bundle is RGB-D")
    frame_bgr = bundle.frame_bgr
    # a --frame-format bgr bundle takes OpenCV's frames as they come (no colour conversion on the host)
    source_options = {"bgr": True} if frame_bgr else {}
    with ExitStack() as stack:
        sources = [stack.enter_context(open_source(spec, depth_dir=args.depth, **source_options))
                   for spec in args.source]
        inputs = [p for p in (*args.source, args.depth) if p and os.path.exists(p)]
        sinks = [open_sink(spec, palette, source.fps, inputs=inputs, overwrite=args.overwrite,
                           title=f"edgeseg: {source.name}" if several else "edgeseg",
                           classes=list(bundle.model.classes), legend=not args.no_legend)
                 for spec, source in zip(sink_specs, sources)]
        _refuse_shared_targets(sinks)
        options = dict(precision=args.precision, threads=threads, device=args.device, streams=args.streams,
                       cuda_graph=args.cuda_graph)
        if args.crf:
            runner = load_crf_runner(args.bundle, args.crf, args.backend, **options)
        else:
            runner = load_runner(args.bundle, args.backend, **options)
        status = StatusLine()
        stack.enter_context(runner)
        for sink in sinks:
            stack.enter_context(sink)
        pipeline = StreamPipeline(runner, sources, sinks, streams=args.streams, max_frames=args.max_frames,
                                  status=status, mode=bundle.resize_mode, live=args.live,
                                  frame_in_graph=bundle.frame_size is not None, frame_bgr=frame_bgr)
        try:
            summary = pipeline.run()
        finally:
            status.close()
    summary.update(model=bundle.model.name, backend=runner.backend, precision=args.precision, crf=args.crf,
                   source=args.source if several else args.source[0], sink=sink_specs if several else sink_specs[0])
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0
