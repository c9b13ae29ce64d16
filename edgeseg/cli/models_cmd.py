"""``edgeseg models``: every registered model with deploy parameters, GFLOPs, default size and paper.

The figures come from a cache keyed by each model's source (:mod:`edgeseg.model_figures`), so the listing needs
no torch; figures not cached are computed (with a progress line) and kept for the next time.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging

from edgeseg.cli.args import input_size, positive_int
from edgeseg.cli.common import add_json, examples, print_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
    add_json(parser, "a list of models")
    parser.add_argument("--input-size", type=input_size, metavar="HxW",
                        help="size for GFLOPs (default: each model's own input size)")
    parser.add_argument("--num-classes", type=positive_int, default=19, metavar="N",
                        help="classes in the head (default 19)")
    parser.add_argument("--refresh", action="store_true",
                        help="count every figure afresh (builds each model: tens of seconds) and rewrite the "
                             "committed cache edgeseg/model_figures.json (every model at its default size, "
                             "19 classes)")
    examples(parser,
             "edgeseg models                          # the zoo: parameters, GMACs, paper",
             "edgeseg models 'bisenet*' --json        # machine-readable, filtered",
             "edgeseg models lednet --input-size 720x1280 --num-classes 11",
             "edgeseg models --refresh                # after editing a model's code")


def _row(entry: dict, figures, num_classes: int, size) -> dict:
    """One row: measured params / FLOPs of the deploy graph and the published reference figures."""
    ref_flops = entry["reference_flops"]
    return {
        "name": entry["name"],
        "params": figures.params,
        "params_with_aux": figures.params_with_aux,
        "gflops": round(figures.flops / 1e9, 3),
        "gmacs": round(figures.flops / 2e9, 3),
        "input_size": list(size),
        "default_input_size": list(entry["input_size"]),
        "num_classes": num_classes,
        "realtime": entry["realtime"],
        "family": entry["family"],
        "paper": entry["paper"],
        "reference": {"params": entry["reference_params"],
                      "gmacs": ref_flops[0] / 1e9 if ref_flops else None,
                      "gmacs_input_size": list(ref_flops[1]) if ref_flops else None,
                      "source": entry["reference_source"]},
    }


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


def _select(entries: list[dict], pattern: str) -> list[dict]:
    """Entries matching ``pattern``, real-time models first, then alphabetical (as the registry lists them)."""
    chosen = [e for e in entries if fnmatch.fnmatchcase(e["name"], pattern)]
    return sorted(chosen, key=lambda e: (not e["realtime"], e["name"]))


def _count(cache, wanted: list[tuple[dict, str, tuple[int, int]]], num_classes: int) -> None:
    """Count the figures of ``wanted`` (entry, key, size) that are not cached, with a progress line."""
    from edgeseg.model_figures import compute
    from edgeseg.progress import Progress

    log.info("counting parameters and FLOPs of %d model(s) not in the cache (builds each model; cached "
             "afterwards)", len(wanted))
    bar = Progress(len(wanted), "models", log_interval=0)
    try:
        for entry, key, size in wanted:
            cache.put(key, compute(entry["name"], num_classes, size))
            bar.update(model=entry["name"])
    finally:
        bar.close()


def _refresh(cache, entries: list[dict]) -> None:
    """Count every model at its default size and class count afresh and rewrite the committed cache."""
    from edgeseg.model_figures import DEFAULT_NUM_CLASSES

    defaults = [(entry, cache.key(entry, DEFAULT_NUM_CLASSES, entry["input_size"]), tuple(entry["input_size"]))
                for entry in entries]
    _count(cache, defaults, DEFAULT_NUM_CLASSES)
    cache.save_committed(entries, {key: cache.get(key) for _, key, _ in defaults})
    log.info("wrote %s (%d models)", cache.committed_path, len(entries))


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError
    from edgeseg.model_figures import FigureCache, registry_entries

    cache = FigureCache()
    entries = None if args.refresh else cache.entries()
    if entries is None:
        if not args.refresh:
            log.info("the model modules changed since edgeseg/model_figures.json was written: reading the "
                     "registry (refresh the cache with `edgeseg models --refresh`)")
        entries = registry_entries()
    chosen = _select(entries, args.pattern)
    if not chosen:
        names = ", ".join(e["name"] for e in _select(entries, "*"))
        raise EdgesegError(f"no model matches {args.pattern!r}; valid models: {names}")
    if args.refresh:
        _refresh(cache, entries)
    plan = []
    for entry in chosen:
        size = tuple(args.input_size or entry["input_size"])
        plan.append((entry, cache.key(entry, args.num_classes, size), size))
    missing = [p for p in plan if not cache.counted(p[1])] if args.refresh else \
        [p for p in plan if cache.get(p[1]) is None]
    if missing:
        _count(cache, missing, args.num_classes)
    cache.save_user()
    rows = [_row(entry, cache.get(key), args.num_classes, size) for entry, key, size in plan]
    if args.json:
        print_json(rows)
    else:
        print(_table(rows))
    return 0
