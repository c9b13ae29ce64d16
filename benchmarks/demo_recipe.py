"""How the demo's training recipe got every class learnt: BiSeNet V2 trained exactly as ``edgeseg demo`` trains it
(a probe sizes the poly schedule to the budget, the run stops at the budget) under one step of the recipe after
another, each scored on the 100 synthetic val scenes at 256×512:

    python benchmarks/demo_recipe.py                      # every variant, 4.5 minutes each (the demo's budget)
    python benchmarks/demo_recipe.py --variants recipe    # one of them; the others' rows are kept

Variants (cumulative): ``crops`` the previous recipe (128×256 crops at scales 0.75-1.5, colour jitter, batch 16,
float32); ``whole`` whole 256×512 scenes at batch 4, no jitter; ``whole_bf16`` with bfloat16 autocast (where the
CPU has it); ``recipe`` with class weights (car 1.5, person and pole 4): the recipe the demo
uses (``edgeseg.train.config.SYNTHETIC_CPU_RECIPE``). Rows are merged by variant and seed into
``benchmarks/results/demo_recipe.json``, so variants can be run one at a time on a quiet machine; each row records
the load average and the steps the budget gave. Wall-time budgets make the rows comparable only on one machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from edgeseg.data.synthetic import CLASSES
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.train.budget import iterations_for_minutes
from edgeseg.train.config import SYNTHETIC_CPU_RECIPE, TrainConfig
from edgeseg.train.trainer import Trainer

log = logging.getLogger("benchmarks.demo_recipe")
RESULTS = Path(__file__).resolve().parent / "results" / "demo_recipe.json"
FLOAT32 = {"cpu_bf16": False}
VARIANTS = {
    "crops": {"crop": (128, 256), "scales": (0.75, 1.5), "jitter": 0.3, "batch_size": 16, "class_weights": None,
              **FLOAT32},
    "whole": {"class_weights": None, **FLOAT32},
    "whole_bf16": {"class_weights": None},
    "recipe": {},
}


def run_variant(name: str, minutes: float, seed: int, runs: Path, env: dict) -> dict:
    """Train BiSeNet V2 under variant ``name`` for ``minutes`` as the demo does; returns its row."""
    changes = VARIANTS[name]
    base = TrainConfig(model="bisenetv2", out=str(runs / f"{name}-{seed}"), **{**SYNTHETIC_CPU_RECIPE, **changes,
                                                                              "seed": seed})
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    iters = iterations_for_minutes(base, minutes)
    config = dataclasses.replace(base, iters=iters, max_minutes=minutes)
    trainer = Trainer(config, overwrite=True)
    t1 = time.monotonic()
    final = trainer.run()
    per_class = {c: round(v, 4) for c, v in zip(CLASSES, final["per_class_iou"])}
    changed = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
    return {"variant": name, "seed": seed, "date": env["date"], "cpu": env["cpu"], "changes_to_recipe": changed,
            "minutes": minutes, "steps": trainer.iteration, "probe_s": round(t1 - t0, 1),
            "train_s": round(time.monotonic() - t1, 1), "bf16": trainer.cpu_bf16,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "miou": round(final["miou"], 4), "min_class_iou": min(per_class.values()), "per_class_iou": per_class}


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows with those of the same (variant, seed) replaced by ``new``, in VARIANTS order; rows of a variant
    this script no longer has are dropped."""
    keyed = {(r["variant"], r["seed"]): r for r in old + new if r["variant"] in VARIANTS}
    order = list(VARIANTS)
    return sorted(keyed.values(), key=lambda r: (order.index(r["variant"]), r["seed"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=4.5, help="training budget per run (the demo's: 5 minus "
                                                                    "its 0.5-minute probe)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/demo_recipe"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    env = collect_environment()
    rows = []
    for name in args.variants:
        for seed in args.seeds:
            log.info("== %s, seed %d: %.1f min", name, seed, args.minutes)
            rows.append(run_variant(name, args.minutes, seed, args.runs, env))
    old = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    result = {"benchmark": "demo_recipe", "model": "bisenetv2",
              "val": "100 synthetic val scenes at 256x512, whole images, torch on cpu",
              "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in SYNTHETIC_CPU_RECIPE.items()},
              "environment": env, "rows": merge(old, rows)}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    header = ("variant", "seed", "steps", "load", "mIoU", *CLASSES)
    print(render_table(header, [(r["variant"], r["seed"], r["steps"], f"{r['load_before']:.1f}",
                                 f"{100 * r['miou']:.1f}", *(f"{100 * v:.0f}" for v in r["per_class_iou"].values()))
                                for r in result["rows"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
