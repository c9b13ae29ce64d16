"""``edgeseg train``: train a model on a dataset spec, writing checkpoints into ``--out``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edgeseg.cli.args import input_size, positive_int

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
    parser.add_argument("--lr", type=float, help="base learning rate (default 3e-3, AdamW)")
    parser.add_argument("--minutes", type=float, help="stop after this much training time")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    parser.add_argument("--config", help="YAML or JSON file of config keys (see TrainConfig)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def build_config(args: argparse.Namespace):
    from edgeseg.errors import EdgesegError
    from edgeseg.models import load_checkpoint
    from edgeseg.train.config import TrainConfig, apply_overrides, load_config_file, parse_set

    config = TrainConfig()
    if args.resume:
        last = Path(args.out) / "last.pt"
        if not last.is_file():
            raise EdgesegError(f"--resume: {last} not found")
        stored = load_checkpoint(last).get("extra", {}).get("config")
        if stored:
            apply_overrides(config, stored)
    if args.config:
        apply_overrides(config, load_config_file(args.config))
    explicit = {"model": args.model, "data": args.data, "out": args.out, "iters": args.iters,
                "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr, "max_minutes": args.minutes}
    apply_overrides(config, {k: v for k, v in explicit.items() if v is not None})
    apply_overrides(config, parse_set(args.set))
    return config


def main(args: argparse.Namespace) -> int:
    from edgeseg.train.trainer import BEST, LAST, Trainer

    config = build_config(args)
    trainer = Trainer(config, resume=args.resume)
    log.info("training %s on %s (%d train / %d val images, %d classes) on %s for %d iterations",
             config.model, config.data, len(trainer.train_source), len(trainer.val_source), trainer.num_classes,
             trainer.device, config.iters)
    final = trainer.run()
    if trainer.ctx.is_main:
        out = Path(config.out)
        summary = {"best_miou": trainer.best_miou, "last_miou": final.get("miou"), "iteration": trainer.iteration,
                   "best": str(out / BEST), "last": str(out / LAST)}
        print(json.dumps(summary))
    return 0
