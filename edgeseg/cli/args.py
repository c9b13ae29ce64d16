"""Argument types shared by subcommands (pure, no torch)."""

from __future__ import annotations

import argparse
import math
import re

from edgeseg.argtypes import whole_number
from edgeseg.data.geometry import MAX_SIDE


def input_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (or a single ``S`` for a square) into ``(H, W)``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"input size must be at least 8x8, got {h}x{w}")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"sides above {MAX_SIDE} are not supported, got {h}x{w}")
    return h, w


def torch_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def torch_device_or_auto(text: str) -> str:
    """``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if text == "auto":
        return text
    try:
        return torch_device(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False, open_high: bool = False):
    """An argparse type for a finite float in a range (``open_*``: that bound excluded); NaN and inf refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if open_low else value < low)
        too_high = high is not None and (value >= high if open_high else value > high)
        if too_low or too_high:
            lo = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
            raise argparse.ArgumentTypeError(f"expected a number {' and '.join(x for x in (lo, hi) if x)}, "
                                             f"got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_number = number(0, open_low=True)
non_negative_number = number(0)
fraction = number(0, 1, open_low=True)




positive_int = whole_number(1, "a positive integer")
non_negative_int = whole_number(0, "0 or more")
