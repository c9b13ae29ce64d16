"""What every subcommand shares beyond argument types: one spelling per concept (with the old spellings kept
as hidden aliases), examples in ``--help``, and ``--json`` output on stdout (pure, no torch)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# One spelling per concept. Each canonical flag lists the spellings it replaced: they still parse (hidden from
# --help, same destination) and no command may show them. tests/test_cli_consistency.py checks every parser.
CANONICAL: dict[str, tuple[str, ...]] = {
    "--val-images": ("--max-images", "--eval-images"),  # how many validation (scored) images
    "--val-data": ("--eval-data",),  # the labelled set the accuracy gate scores
    "--calib-images": ("--calib-size",),  # how many calibration images
    "--batch-size": ("--batch",),  # images per inference (export, bench) or per optimizer step (train)
    "--input-size": ("--crop",),  # the network's input HxW (training crop, deploy size, FLOPs size)
    "--out": ("--report",),  # where a command writes its artifact (a folder or a file)
}
# Flags whose default must be the same wherever they appear.
SHARED_DEFAULTS: dict[str, Any] = {
    "--device": "auto",  # the torch backend's device: a CUDA GPU when torch sees one, else the CPU
}
PRECISION_DEFAULT = "fp32"  # a command running one variant runs the reference; bench (several) runs all
DEVICE_HELP = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N"


def hidden_alias(container, old: str, action: argparse.Action) -> argparse.Action:
    """Let ``old`` set what ``action`` sets (same destination, type and choices) without showing it in
    ``--help``. ``container`` is where ``action`` was added (a parser, group or mutually exclusive group)."""
    kwargs: dict[str, Any] = {"dest": action.dest, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
    if isinstance(action, argparse._StoreTrueAction):
        kwargs["action"] = "store_true"
    elif isinstance(action, argparse._AppendAction):
        kwargs.update(action="append", type=action.type, metavar=action.metavar)
    else:
        kwargs.update(type=action.type, choices=action.choices, nargs=action.nargs, metavar=action.metavar)
    return container.add_argument(old, **kwargs)


def add_canonical(container, flag: str, *old: str, **kwargs) -> argparse.Action:
    """Add ``flag`` (a key of :data:`CANONICAL`) and, as hidden aliases, the spellings ``old`` this command
    used for it before (each one of those :data:`CANONICAL` lists)."""
    unknown = [o for o in old if o not in CANONICAL[flag]]
    if unknown:
        raise ValueError(f"{unknown} are not spellings {flag} replaced")
    action = container.add_argument(flag, **kwargs)
    for spelling in old:
        hidden_alias(container, spelling, action)
    return action


def examples(parser: argparse.ArgumentParser, *lines: str) -> None:
    """Close ``--help`` with worked examples (one command line each, optionally ``  # what it does``)."""
    parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_json(parser, what: str = "the result") -> argparse.Action:
    """``--json``: print ``what`` as one JSON document on stdout instead of text."""
    return parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout instead of text")


def print_json(document: Any) -> None:
    """One JSON document on stdout (the result; logs and progress are on stderr)."""
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
