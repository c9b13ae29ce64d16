"""Placeholder for ``edgeseg deploy triton`` (being written)."""

from __future__ import annotations

import argparse

from edgeseg.errors import EdgesegError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle")


def main(args: argparse.Namespace) -> int:
    raise EdgesegError("deploy triton is not written yet")
