"""``edgeseg import``: a published checkpoint (CoinCheung's BiSeNet, torchvision's DeepLabV3, ...) → an edgeseg
checkpoint that ``export``, ``eval``, ``bench`` and ``run`` take as it is."""

from __future__ import annotations

import argparse

from edgeseg.cli.args import positive_int
from edgeseg.cli.common import add_json, examples, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", nargs="?", help="the checkpoint's format (edgeseg import --list)")
    parser.add_argument("file", nargs="?", help="the published checkpoint (.pth / .pt / .tar)")
    parser.add_argument("--out", help="edgeseg checkpoint to write (.pt)")
    parser.add_argument("--dataset", metavar="NAME",
                        help="label set it was trained on: cityscapes, camvid, voc, ade20k, coco-stuff, nyuv2 "
                             "(default: the format's, chosen by the classifier's class count)")
    parser.add_argument("--num-classes", type=positive_int, metavar="N",
                        help="the classifier's class count, for weights fine-tuned on one's own classes "
                             "(generic class names)")
    parser.add_argument("--list", action="store_true", help="list the formats and the model each maps to")
    add_json(parser, "what was imported (or, with --list, the formats)")
    examples(parser,
             "edgeseg import --list                                        # the formats",
             "edgeseg import coincheung-bisenetv2 model_final_v2_city.pth --out bisenetv2-city.pt",
             "edgeseg import torchvision-deeplabv3 weights.pth --out dl3.pt --num-classes 5 --json")


def _formats() -> list[dict]:
    from edgeseg.models.importers.formats import FORMATS

    return [{"format": f.name, "model": f.model, "options": dict(f.kwargs), "datasets": list(f.datasets),
             "source": f.source} for f in FORMATS.values()]


def _listing(formats: list[dict]) -> str:
    from edgeseg.texttable import render_table

    rows = [(f["format"], f["model"], ", ".join(f"{k}={v}" for k, v in f["options"].items()),
             ", ".join(f["datasets"]), f["source"]) for f in formats]
    return render_table(("format", "model", "options", "datasets", "source"), rows)


def main(args: argparse.Namespace) -> int:
    from edgeseg.errors import EdgesegError

    if args.list:
        formats = _formats()
        if args.json:
            print_json(formats)
        else:
            print(_listing(formats))
        return 0
    if not args.format or not args.file or not args.out:
        raise EdgesegError("usage: edgeseg import FORMAT FILE --out CKPT [--dataset NAME] [--num-classes N] "
                           "(formats: edgeseg import --list)")
    from edgeseg.models.importers import import_checkpoint

    result = import_checkpoint(args.format, args.file, args.out, dataset=args.dataset, num_classes=args.num_classes)
    meta = result.meta
    if args.json:
        print_json({"path": str(result.path), "source": str(args.file), "format": result.format,
                    "model": result.model, "options": dict(result.kwargs), "num_classes": meta.num_classes,
                    "dataset": result.dataset, "input_size": list(meta.input_size), "mean": list(meta.mean),
                    "std": list(meta.std), "left_out": len(result.unused_keys)})
        return 0
    options = ", ".join(f"{k}={v}" for k, v in result.kwargs.items())
    print(f"imported {args.file} ({result.format}) -> {result.path}")
    print(f"  model {result.model} ({options}); {meta.num_classes} classes "
          f"({result.dataset or 'generic names'}); input {meta.input_size[0]}x{meta.input_size[1]}; "
          f"mean {tuple(round(v, 4) for v in meta.mean)}, std {tuple(round(v, 4) for v in meta.std)}")
    if result.unused_keys:
        print(f"  left out {len(result.unused_keys)} tensors of training-only heads")
    return 0
