"""The ``edgeseg`` command: argparse with one module per subcommand, imported only when that one runs.

Each subcommand module defines ``add_arguments(parser)`` and ``main(args) -> int`` (Polygraphy's tool
contract). A user error (:class:`edgeseg.errors.EdgesegError`) prints one line and exits 1; ``--verbose``
shows the traceback of any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading

from edgeseg import __version__
from edgeseg.errors import EdgesegError, one_line

# name -> (module, one-line help). Modules are imported lazily, so `edgeseg models` never loads onnx and
# `edgeseg run` (later) never loads torch.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("edgeseg.cli.demo_cmd", "the whole job on built-in data: train, export fp32/fp16/int8, bench, report"),
    "models": ("edgeseg.cli.models_cmd", "list the model zoo with parameters and GFLOPs (cached per model source)"),
    "import": ("edgeseg.cli.import_cmd", "a published checkpoint (CoinCheung's BiSeNet, torchvision's DeepLabV3, ...) "
                                         "as an edgeseg checkpoint"),
    "train": ("edgeseg.cli.train_cmd", "train a model on a dataset (synthetic scenes by default)"),
    "weak-labels": ("edgeseg.cli.weak_labels_cmd", "simulated clicks or scribbles of a labelled dataset, as a folder:"),
    "pseudo-label": ("edgeseg.cli.pseudo_label_cmd", "seeds from tags (CAM, MDC, FickleNet), as a folder:"),
    "propagate": ("edgeseg.cli.propagate_cmd", "carry labels to the video frames around labelled ones (joint "
                                               "image-label propagation): a folder dataset of new training pairs"),
    "eval": ("edgeseg.cli.eval_cmd", "evaluate a checkpoint, bundle or ONNX file: mIoU, per-class IoU"),
    "export": ("edgeseg.cli.export_cmd", "export to a verified, TensorRT-linted ONNX bundle"),
    "lint": ("edgeseg.cli.lint_cmd", "check an ONNX file against TensorRT's ONNX parser"),
    "calibrate": ("edgeseg.cli.calibrate_cmd", "add FP16 / INT8 variants to a bundle, gated by accuracy"),
    "bench": ("edgeseg.cli.bench_cmd", "latency, FPS, memory and mIoU per engine, with a JSON/Markdown/HTML report"),
    "report": ("edgeseg.cli.report_cmd", "merge bench reports from several machines into one"),
    "build": ("edgeseg.cli.build_cmd", "build a TensorRT engine from a bundle (fp16, int8 Q/DQ, DLA) into the bundle"),
    "run": ("edgeseg.cli.run_cmd", "segment a video, camera or image stream: overlay video, label PNGs, window"),
    "deploy": ("edgeseg.cli.deploy_cmd", "hand a bundle to DeepStream (nvinfer config) or Triton (model repository)"),
    "serve": ("edgeseg.cli.serve_cmd", "serve a bundle behind a local Triton server (HTTP, gRPC, dynamic batching)"),
}

EPILOG = """every command:
  stdout carries the result (a table, or JSON with --json); logs and progress bars go to stderr
  one spelling per concept: --val-images N (validation images scored), --batch-size N, --input-size HxW,
  --out PATH, --device auto, --precision fp32 (bench: all); `edgeseg COMMAND --help` shows defaults, examples

examples:
  edgeseg demo                                                  # train, export, bench on built-in data
  edgeseg models                                                # the zoo
  edgeseg train --out runs/demo --minutes 5 --val-images 20
  edgeseg export --checkpoint runs/demo/best.pt --out bundle --fp16 --int8 --calib-data synthetic
  edgeseg bench bundle --data synthetic --val-images 20 --out bench-report
  edgeseg run bundle --source clip.mp4 --sink overlay.mp4"""


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit code 1."""

    def error(self, message: str):
        self.exit(1, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgeseg", description="Real-time semantic segmentation: PyTorch → ONNX → TensorRT, measured.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging and full tracebacks")
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def _selected_command(argv: list[str]) -> str | None:
    for token in argv:
        if token in SUBCOMMANDS:
            return token
        if not token.startswith("-"):
            return None
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, systemd): handled exactly like Ctrl-C, so every staged artifact is
    cleaned up and every sink closed on the way out."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    with _sigterm_as_interrupt():
        return _main(sys.argv[1:] if argv is None else list(argv))


def entry() -> None:
    """The ``edgeseg`` command. After SIGTERM the cleanup has already run; the process ends at once with 143
    instead of tearing down the interpreter under native threads (torch, onnxruntime) still winding down."""
    code = main()
    if code == 143:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _reader_gone() -> int:
    """The reader of stdout went away (``edgeseg models | head``): not an error. Stdout goes to /dev/null so the
    interpreter's last flush is quiet; the status is a SIGPIPE death's, as the shell expects."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _main(argv: list[str]) -> int:
    from edgeseg.fileio import USER_ERRNOS, os_error

    verbose = "-v" in argv or "--verbose" in argv
    try:
        parser = _build_parser(_selected_command(argv))
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, force=True,
                            format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s")
        if args.command is None:
            parser.print_help()
            return 1
        from edgeseg.stdio import native_stdout_to_stderr

        with native_stdout_to_stderr():  # stdout: the command's result only, never a library's native prints
            return int(args._module.main(args) or 0)
    except EdgesegError as exc:
        if verbose:
            raise
        print(f"edgeseg: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except Terminated:
        print("edgeseg: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("edgeseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()
    except Exception as exc:  # a bug, not a user error: still one line unless --verbose
        if verbose:
            raise
        if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:  # a full disk, a read-only folder: the machine's
            print(f"edgeseg: error: {os_error(exc, verb='cannot access')}", file=sys.stderr)
            return 1
        print(f"edgeseg: internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with --verbose for the "
              "traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    entry()
