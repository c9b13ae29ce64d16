"""Train real-time models on the synthetic street scenes under a fixed CPU time budget.

For each model: iterations per second, images per second, and val mIoU (100 val scenes at 256×512) after
``--minutes`` of training with the synthetic CPU recipe (``SYNTHETIC_CPU_RECIPE``: whole scenes, batch 4).
Prints a table, writes ``benchmarks/results/train_synthetic.json``, and keeps each run's best checkpoint (compact:
deploy graph in float16) in ``--keep DIR`` so later stages and benchmarks can use trained weights:

    python benchmarks/train_synthetic.py --minutes 10 --keep benchmarks/checkpoints
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from edgeseg.fileio import write_text_atomic
from edgeseg.models import load_checkpoint, load_model, save_checkpoint
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.train.budget import iterations_for_minutes
from edgeseg.train.config import SYNTHETIC_CPU_RECIPE, TrainConfig
from edgeseg.train.trainer import BEST, Trainer

log = logging.getLogger("benchmarks.train_synthetic")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train_synthetic.json"
RECIPE = SYNTHETIC_CPU_RECIPE


def _model_steps(text: str) -> tuple[str, int]:
    name, _, steps = text.partition("=")
    if not name or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected MODEL=N with N a positive step count, got {text!r}")
    return name, int(steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2", "lednet", "dfanet_b"])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget per model")
    parser.add_argument("--iters", type=int, default=100_000, help="schedule length (the budget stops it first)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_train"))
    parser.add_argument("--keep", type=Path, help="copy each best checkpoint here as <model>.pt")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--steps", nargs="+", default=[], metavar="MODEL=N", type=_model_steps,
                        help="train MODEL exactly N steps instead of timing a probe and stopping at --minutes: on a "
                             "loaded machine, pass what a quiet one fits in --minutes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    fixed_steps = dict(args.steps)

    rows = []
    for name in args.models:
        base = TrainConfig(model=name, out=str(args.runs / name), **RECIPE)
        load_before = os.getloadavg()[0]
        if name in fixed_steps:
            log.info("== %s: %d steps on synthetic scenes (load %.1f)", name, fixed_steps[name], load_before)
            config = dataclasses.replace(base, iters=fixed_steps[name], max_minutes=None)
        else:
            log.info("== %s: %.1f min on synthetic scenes (load %.1f)", name, args.minutes, load_before)
            iters = iterations_for_minutes(base, args.minutes, minimum=50)
            config = dataclasses.replace(base, iters=min(iters, args.iters), max_minutes=args.minutes)
        shutil.rmtree(args.runs / name, ignore_errors=True)
        trainer = Trainer(config)
        t0 = time.monotonic()
        final = trainer.run()
        elapsed = time.monotonic() - t0
        row = {"model": name, "iterations": trainer.iteration, "planned_iterations": config.iters,
               "train_seconds": round(elapsed, 1), "iters_per_s": round(trainer.iteration / elapsed, 3),
               "images_per_s": round(trainer.iteration * config.batch_size / elapsed, 2),
               "val_miou": round(final["miou"], 4), "val_pixel_acc": round(final["pixel_acc"], 4),
               "per_class_iou": final["per_class_iou"], "fixed_steps": name in fixed_steps,
               "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
               "torch_threads": torch.get_num_threads()}
        rows.append(row)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            best = Path(config.out) / BEST
            model, meta, _ = load_model(best)
            save_checkpoint(args.keep / f"{name}.pt", model, name=name, meta=meta, compact=True,
                            extra={"metrics": load_checkpoint(best)["extra"].get("metrics"),
                                   "recipe": {**RECIPE, "iters": config.iters, "minutes": args.minutes},
                                   "made_by": "python benchmarks/train_synthetic.py --keep benchmarks/checkpoints"})
        log.info("%s: %d iterations, val mIoU %.4f", name, trainer.iteration, final["miou"])

    result = {"benchmark": "train_synthetic", "minutes_per_model": args.minutes, "recipe": RECIPE,
              "val": "100 synthetic val scenes at 256x512, whole images", "torch": torch.__version__,
              "environment": collect_environment(), "models": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    header = ("model", "iters", "iters/s", "img/s", "val mIoU", "pixel acc")
    print(render_table(header, [(r["model"], r["iterations"], f"{r['iters_per_s']:.2f}", f"{r['images_per_s']:.1f}",
                                 f"{100 * r['val_miou']:.1f}", f"{100 * r['val_pixel_acc']:.1f}") for r in rows]))
    env = result["environment"]
    print(f"\n{args.minutes:g} min per model on {env['cpu']} ({env['cpu_cores']} cores), {env['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
