"""``edgeseg train``: train a model on a dataset spec, writing checkpoints into ``--out``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edgeseg.cli.args import input_size, positive_int, positive_number, torch_device_or_auto
from edgeseg.cli.common import DEVICE_HELP, add_canonical, add_json, examples, print_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to train")
    what.add_argument("--model", help="registry name (see `edgeseg models`; default bisenetv2)")
    what.add_argument("--data", help="data spec: synthetic[:N], cityscapes:/path, camvid:/path, voc:/path, "
                                     "ade20k:/path, folder:IMAGES,LABELS (default synthetic)")
    what.add_argument("--config", help="YAML or JSON file of config keys (see TrainConfig)")
    what.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                      help="override config keys, e.g. --set optimizer=sgd workers=0 (default: none)")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--iters", type=positive_int, help="optimizer steps (default 2000)")
    schedule.add_argument("--minutes", type=positive_number,
                          help="stop (validate, save) after this much training time (default: no limit)")
    schedule.add_argument("--batch-size", type=positive_int, metavar="N", help="images per step and rank (default 8)")
    add_canonical(schedule, "--input-size", "--crop", type=input_size, metavar="HxW",
                  help="training crop: the network's input while training (default 128x256 on synthetic, "
                       "512x1024 otherwise)")
    schedule.add_argument("--lr", type=positive_number, help="base learning rate (default 3e-3, AdamW)")
    schedule.add_argument("--device", type=torch_device_or_auto,
                          help=f"where training runs: {DEVICE_HELP} (default auto)")
    val = parser.add_argument_group("validation (torch, each image at its own size; a progress bar shows it)")
    val.add_argument("--val-images", type=positive_int, metavar="N",
                     help="validate on the first N images of the val split (default: all of it)")
    val.add_argument("--val-every", type=positive_int, metavar="ITERS",
                     help="validate every ITERS steps, and at the end (default 500)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    out.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an earlier run in OUT (its last.pt, best.pt, metrics.jsonl and config.json "
                          "only, when this run writes its first checkpoint)")
    add_json(out, "the summary (best and last mIoU, checkpoints)")
    examples(parser,
             "edgeseg train --out runs/demo --minutes 5                     # synthetic scenes, CPU-friendly",
             "edgeseg train --model lednet --data cityscapes:/data/cityscapes --out runs/lednet --batch-size 16",
             "edgeseg train --out runs/demo --val-images 20 --val-every 200   # quicker validation",
             "edgeseg train --out runs/demo --resume                         # continue after Ctrl-C")


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
                "batch_size": args.batch_size, "crop": args.input_size, "lr": args.lr, "max_minutes": args.minutes,
                "device": args.device, "val_max_images": args.val_images, "val_every": args.val_every}
    apply_overrides(config, {k: v for k, v in explicit.items() if v is not None})
    apply_overrides(config, parse_set(args.set))
    return config.validate()


def main(args: argparse.Namespace) -> int:
    from edgeseg.train import distributed
    from edgeseg.train.trainer import BEST, LAST, Trainer, check_run_folder

    check_run_folder(args.out, resume=args.resume, overwrite=args.overwrite)  # before anything is read
    config = build_config(args)
    trainer = Trainer(config, resume=args.resume, overwrite=args.overwrite)
    val_images = min(len(trainer.val_source), config.val_max_images or len(trainer.val_source))
    log.info("training %s on %s (%d train images, %d classes) on %s for %d iterations; validating every %d "
             "iterations and at the end on %d of the %d val images (--val-images, --val-every)", config.model,
             config.data, len(trainer.train_source), trainer.num_classes, trainer.device, config.iters,
             config.val_every, val_images, len(trainer.val_source))
    try:
        final = trainer.run()
    finally:
        distributed.shutdown(trainer.ctx)  # under torchrun: destroy the process group on the way out
    if trainer.ctx.is_main:
        out = Path(trainer.config.out)
        summary = {"best_miou": trainer.best_miou, "last_miou": final.get("miou"), "iteration": trainer.iteration,
                   "best": str(out / BEST), "last": str(out / LAST),
                   "validation": {"data": trainer.val_source.name, "images": val_images,
                                  "resolution": "each image at its own size", "backend": "torch",
                                  "device": str(trainer.device)}}
        if args.json:
            print_json(summary)
        else:
            print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """The run's outcome as text: mIoU with what it was measured on, and the checkpoints."""
    val = summary["validation"]
    last = summary["last_miou"]
    return (f"best mIoU {100 * summary['best_miou']:.2f}"
            + (f", last {100 * last:.2f}" if last is not None else "")
            + f" after {summary['iteration']} iterations: {val['images']} images of {val['data']}, "
            f"{val['resolution']}, {val['backend']} on {val['device']}\n"
            f"best checkpoint: {summary['best']}\nlast checkpoint: {summary['last']}")
