"""argparse types shared by the CLI and by the modules outside it that build their own parsers (export/'s
deploy targets may not import :mod:`edgeseg.cli`)."""

from __future__ import annotations

import argparse


def whole_number(minimum: int, what: str):
    """An argparse type for an integer of at least ``minimum`` (``what`` names the range in the message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse
