"""Argument types shared by subcommands (pure, no torch)."""

from __future__ import annotations

import argparse
import re


def input_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (or a single ``S`` for a square) into ``(H, W)``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"input size must be at least 8x8, got {h}x{w}")
    return h, w


def torch_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
