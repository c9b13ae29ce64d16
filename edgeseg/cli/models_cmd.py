"""``edgeseg models``: every registered model with deploy parameters, GFLOPs, default size and paper."""

from __future__ import annotations

import argparse
import json
import sys

from edgeseg.cli.args import input_size, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--input-size", type=input_size, metavar="HxW",
                        help="size for GFLOPs (default: each model's own input size)")
    parser.add_argument("--num-classes", type=positive_int, default=19, metavar="N",
                        help="classes in the head (default: 19)")


def describe(name: str, num_classes: int, size: tuple[int, int] | None) -> dict:
    """One row: measured params / FLOPs of the deploy graph and the published reference figures."""
    import torch

    from edgeseg.models import build, count_flops, count_parameters, model_info

    info = model_info(name)
    size = tuple(size or info.input_size)
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = build(name, num_classes=num_classes)
    flops = count_flops(model, size)
    row = {
        "name": name,
        "params": count_parameters(model),
        "params_with_aux": count_parameters(model, deploy=False),
        "gflops": round(flops / 1e9, 3),
        "gmacs": round(flops / 2e9, 3),
        "input_size": list(size),
        "default_input_size": list(info.input_size),
        "num_classes": num_classes,
        "realtime": info.realtime,
        "family": info.family,
        "paper": info.paper,
        "reference": {"params": info.reference_params,
                      "gmacs": info.reference_flops[0] / 1e9 if info.reference_flops else None,
                      "gmacs_input_size": list(info.reference_flops[1]) if info.reference_flops else None,
                      "source": info.reference_source},
    }
    return row


def _reference(ref: dict) -> str:
    parts = []
    if ref["params"]:
        parts.append(f"{ref['params'] / 1e6:.3f}M params")
    if ref["gmacs"]:
        parts.append(f"{ref['gmacs']:.2f} GMACs at {'x'.join(map(str, ref['gmacs_input_size']))}")
    return "; ".join(parts) or "-"


def _short(paper: str, width: int = 48) -> str:
    """The paper's authors, or its title cut to ``width`` characters (the full citation is in ``--json``)."""
    head = paper.split(":")[0]
    return head if len(head) <= width else head[: width - 1] + "…"


def _table(rows: list[dict]) -> str:
    from edgeseg.texttable import render_table

    table = render_table(
        ("model", "params", "GMACs", "GFLOPs", "at HxW", "default", "reference figure", "paper"),
        [(r["name"], f"{r['params'] / 1e6:.3f}M", f"{r['gmacs']:.2f}", f"{r['gflops']:.2f}",
          "x".join(map(str, r["input_size"])), "x".join(map(str, r["default_input_size"])),
          _reference(r["reference"]), _short(r["paper"])) for r in rows])
    return table + "\nparams: deploy graph (aux heads excluded). GFLOPs count a multiply-add as 2; papers quote GMACs."


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.models import list_models

    names = list_models(args.pattern)
    if not names:
        raise EdgesegError(f"no model matches {args.pattern!r}; valid models: {', '.join(list_models())}")
    rows = [describe(n, args.num_classes, args.input_size) for n in names]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_table(rows))
    return 0
