"""``edgeseg serve BUNDLE``: the bundle's runner behind a local Triton Inference Server (HTTP, gRPC, dynamic
batching, health and metrics), until Ctrl-C or SIGTERM. The server itself is :mod:`edgeseg.runtime.serve`."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import positive_int, positive_number, whole_number
from edgeseg.cli.common import add_json, examples, print_json
from edgeseg.runtime.backends import PRECISIONS

CLIENTS = """Once ready, it prints its endpoints on stdout (a table, or JSON with --json) and serves until Ctrl-C or
SIGTERM. Clients: tritonclient (HTTP or gRPC); the model takes the bundle's uint8 frames (N x H x W x 3) and
returns its uint8 labels (N x H x W). `curl localhost:8000/v2/health/ready` answers 200 once the model is loaded;
`curl localhost:8002/metrics | grep nv_inference` shows requests against batches run. Needs
pip install 'edgeseg[serve]'."""

port = whole_number(1, "a port number 1-65535")


def _port(text: str) -> int:
    value = port(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {value}")
    return value


_port.__name__ = "port"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeseg.runtime.serve import SERVE_BACKENDS, ServeOptions

    d = ServeOptions()
    parser.description = f"{parser.description}. {CLIENTS}"
    examples(parser,
             "edgeseg serve runs/bisenetv2 --max-batch 8",
             "edgeseg serve runs/bisenetv2 --host 0.0.0.0 --port 9000 --grpc-port 9001 --metrics-port 9002",
             "edgeseg serve runs/bisenetv2 --precision int8 --json   # endpoints as JSON once ready")
    parser.add_argument("bundle", help="a bundle folder")
    parser.add_argument("--host", default=d.host,
                        help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=d.http_port, help="HTTP port (default: %(default)s)")
    parser.add_argument("--grpc-port", type=_port, default=d.grpc_port, help="gRPC port (default: %(default)s)")
    parser.add_argument("--metrics-port", type=_port, default=d.metrics_port,
                        help="Prometheus metrics port, /metrics (default: %(default)s)")
    parser.add_argument("--max-batch", type=positive_int, default=d.max_batch,
                        help="most rows Triton's dynamic batcher gathers into one batch; the runner takes it in "
                             "pieces of the bundle's batch size (default: %(default)s)")
    parser.add_argument("--max-queue-delay-us", type=whole_number(0, "0 or more microseconds"),
                        default=d.max_queue_delay_us,
                        help="how long a request may wait for others to batch with (default: %(default)s)")
    parser.add_argument("--backend", choices=SERVE_BACKENDS, default=d.backend,
                        help="the runner, as edgeseg run picks it: auto takes the bundle's TensorRT engine when "
                             "TensorRT is usable, else its ONNX with OpenVINO on an x86 CPU, else ONNX Runtime "
                             "(default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                        help="which of the bundle's models to serve (default: %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=d.threads,
                        help="CPU threads of the runner (default: the backend's own choice)")
    add_json(parser, "the endpoints, once the model is loaded,")
    parser.add_argument("--startup-timeout", type=positive_number, default=d.startup_timeout_s, metavar="SECONDS",
                        help="give up if the model is not loaded by then (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    from edgeseg.runtime.serve import ServeOptions, serve

    options = ServeOptions(host=args.host, http_port=args.port, grpc_port=args.grpc_port,
                           metrics_port=args.metrics_port, max_batch=args.max_batch,
                           max_queue_delay_us=args.max_queue_delay_us, backend=args.backend,
                           precision=args.precision, threads=args.threads, startup_timeout_s=args.startup_timeout,
                           verbose=bool(getattr(args, "verbose", False)))

    def show(endpoints: dict) -> None:
        if args.json:
            print_json(endpoints)
            return
        width = max(map(len, endpoints))
        print("\n".join(f"{key:<{width}}  {value}" for key, value in endpoints.items()), flush=True)

    return serve(args.bundle, options, on_ready=show)
