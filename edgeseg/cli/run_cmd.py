"""``edgeseg run BUNDLE --source SPEC``: segment a video, camera or image stream with K frames in flight."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from edgeseg.cli.args import positive_int, torch_device
from edgeseg.runtime.backends import BACKEND_CHOICES, PRECISIONS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="a bundle folder (or a model file inside one)")
    parser.add_argument("--source", required=True,
                        help="image folder, video file, camera:N, gst:PIPELINE (Jetson CSI: see the README) or "
                             "rtsp:// URL")
    parser.add_argument("--depth", metavar="DIR",
                        help="RGB-D models (acnet): depth maps paired by file stem with an image folder source "
                             "(16-bit PNG in mm or .npy in m)")
    parser.add_argument("--sink", default="null",
                        help="OUT.mp4 (overlay video), labels:DIR, overlays:DIR, window, or null (default)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let an OUT.mp4 sink replace an existing file (never the source)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="auto (default): the bundle's TensorRT engine when TensorRT is usable, else ONNX Runtime")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="torch backend: cpu (default), or cuda / cuda:N (fp32 or fp16 on CUDA streams)")
    parser.add_argument("--streams", type=positive_int, default=1, help="frames in flight (default 1)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads per stream (default: the cores shared among the streams)")
    parser.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="TensorRT and torch on CUDA: replay each stream's work as a CUDA graph")
    parser.add_argument("--crf", nargs="?", const="conv", choices=("conv", "dense"),
                        help="CRF post-processing: conv (ConvCRF, default; the bundle's fused model.crf.onnx or "
                             "crf.onnx chained after the model; needs edgeseg export --crf) or dense (Krähenbühl's "
                             "dense CRF on the CPU, pydensecrf2: the slow quality reference)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


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


def format_summary(summary: dict) -> str:
    from edgeseg.texttable import render_table

    head = (f"{summary['frames_out']} of {summary['frames_in']} frames in {summary['seconds']:.1f} s: "
            f"{summary['fps']:.1f} FPS with {summary['streams']} in flight; {summary['dropped']} dropped by the "
            f"source" + ("; stopped by a signal (Ctrl-C or SIGTERM)" if summary["interrupted"] else ""))
    rows = [(name, f"{s['mean']:.2f}", f"{s['p50']:.2f}", f"{s['p99']:.2f}")
            for name, s in summary["stages_ms"].items()]
    return head + "\n" + render_table(("stage", "mean ms", "p50 ms", "p99 ms"), rows, right=(1, 2, 3))


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.bundle import open_bundle
    from edgeseg.runtime.crf import load_crf_runner
    from edgeseg.runtime.load import load_runner
    from edgeseg.runtime.pipeline import StreamPipeline
    from edgeseg.runtime.sinks import open_sink
    from edgeseg.runtime.sources import open_source

    if args.device != "cpu" and args.backend != "torch":
        raise EdgesegError("--device is where the torch backend runs: add --backend torch")
    bundle = open_bundle(args.bundle)
    palette = bundle.model.palette
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.streams) if args.streams > 1 else None)
    if bundle.takes_depth and not args.depth:
        raise EdgesegError(f"{bundle.model.name} is an RGB-D model: give --depth DIR with an image folder source")
    if args.depth and not bundle.takes_depth:
        raise EdgesegError(f"--depth: this bundle ({bundle.model.name}) takes no depth; it is an RGB model")
    if args.crf and bundle.takes_depth:
        raise EdgesegError("--crf takes RGB models; this bundle is RGB-D")
    frame_bgr = bundle.frame_bgr
    # a --frame-format bgr bundle takes OpenCV's frames as they come (no colour conversion on the host)
    source = open_source(args.source, depth_dir=args.depth, **({"bgr": True} if frame_bgr else {}))
    with source:
        inputs = [p for p in (args.source, args.depth) if p and os.path.exists(p)]
        sink = open_sink(args.sink, palette, source.fps, inputs=inputs, overwrite=args.overwrite)
        options = dict(precision=args.precision, threads=threads, device=args.device, streams=args.streams,
                       cuda_graph=args.cuda_graph)
        if args.crf:
            runner = load_crf_runner(args.bundle, args.crf, args.backend, **options)
        else:
            runner = load_runner(args.bundle, args.backend, **options)
        status = StatusLine()
        with runner, sink:
            pipeline = StreamPipeline(runner, source, sink, streams=args.streams, max_frames=args.max_frames,
                                      status=status, mode=bundle.resize_mode,
                                      frame_in_graph=bundle.frame_size is not None, frame_bgr=frame_bgr)
            try:
                summary = pipeline.run()
            finally:
                status.close()
    summary.update(model=bundle.model.name, backend=runner.backend, precision=args.precision, crf=args.crf,
                   source=args.source, sink=args.sink)
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0
