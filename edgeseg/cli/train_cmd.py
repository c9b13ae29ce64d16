"""``edgeseg train``: train a model on a dataset spec, writing checkpoints into ``--out``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edgeseg.cli.args import input_size, positive_int, positive_number

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registry name (see `edgeseg models`); default bisenetv2")
    parser.add_argument("--data", help="data spec: synthetic[:N], cityscapes:/path, camvid:/path, voc:/path, "
                                       "ade20k:/path, folder:IMAGES,LABELS (default synthetic)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument("--iters", type=positive_int, help="optimizer steps (default 2000)")
    parser.add_argument("--batch-size", type=positive_int, help="images per step and rank (default 8)")
    parser.add_argument("--crop", type=input_size, metavar="HxW",
                        help="training crop (default 128x256 on synthetic, 512x1024 otherwise)")
    parser.add_argument("--lr", type=positive_number, help="base learning rate (default 3e-3, AdamW)")
    parser.add_argument("--minutes", type=positive_number, help="stop after this much training time")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in OUT (its last.pt, best.pt, metrics.jsonl and config.json "
                             "only, when this run writes its first checkpoint)")
    parser.add_argument("--config", help="YAML or JSON file of config keys (see TrainConfig)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def build_config(args: argparse.Namespace):
    """The run's :class:`TrainConfig`: defaults, then a resumed run's stored config, ``--config``, the flags and
    ``--set``, each converted and the whole validated."""
    from edgeseg.errors import CheckpointError
    from edgeseg.models import load_checkpoint
    from edgeseg.train.config import TrainConfig, apply_overrides, load_config_file, parse_set

    config = TrainConfig()
    if args.resume:
        last = Path(args.out) / "last.pt"
        if not last.is_file():
            raise CheckpointError(f"--resume: {last} not found")
        stored = load_checkpoint(last)["extra"].get("config")
        if stored is not None and not isinstance(stored, dict):
            raise CheckpointError(f"--resume: {last} holds no training config")
        if stored:
            apply_overrides(config, stored)
    if args.config:
        apply_overrides(config, load_config_file(args.config))
    explicit = {"model": args.model, "data": args.data, "out": args.out, "iters": args.iters,
                "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr, "max_minutes": args.minutes}
    apply_overrides(config, {k: v for k, v in explicit.items() if v is not None})
    apply_overrides(config, parse_set(args.set))
    return config.validate()


def main(args: argparse.Namespace) -> int:
    from edgeseg.train import distributed
    from edgeseg.train.trainer import BEST, LAST, Trainer, check_run_folder

    check_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)  # before anything is read
    config = build_config(args)
    trainer = Trainer(config, resume=args.resume, overwrite=args.overwrite)
    log.info("training %s on %s (%d train / %d val images, %d classes) on %s for %d iterations",
             config.model, config.data, len(trainer.train_source), len(trainer.val_source), trainer.num_classes,
             trainer.device, config.iters)
    try:
        final = trainer.run()
    finally:
        distributed.shutdown(trainer.ctx)  # under torchrun: destroy the process group on the way out
    if trainer.ctx.is_main:
        out = Path(trainer.config.out)
        summary = {"best_miou": trainer.best_miou, "last_miou": final.get("miou"), "iteration": trainer.iteration,
                   "best": str(out / BEST), "last": str(out / LAST)}
        print(json.dumps(summary))
    return 0
