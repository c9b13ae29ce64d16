"""``edgeseg eval CHECKPOINT --data SPEC``: mIoU, pixel accuracy and per-class IoU on a dataset split."""

from __future__ import annotations

import argparse
import json
import sys

from edgeseg.cli.args import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an edgeseg checkpoint (.pt)")
    parser.add_argument("--data", default="synthetic", help="data spec (default synthetic)")
    parser.add_argument("--split", default="val", help="dataset split (default val)")
    parser.add_argument("--max-images", type=positive_int, help="evaluate only the first N images")
    parser.add_argument("--boundary", action="store_true", help="also report the boundary F-score")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def format_table(scores: dict, classes: list[str]) -> str:
    width = max(len(c) for c in classes + ["class"])
    lines = [f"{'class'.ljust(width)}  IoU", f"{'-' * width}  ------"]
    for name, iou in zip(classes, scores["per_class_iou"]):
        lines.append(f"{name.ljust(width)}  {'   n/a' if iou is None else f'{100 * iou:6.2f}'}")
    lines.append(f"{'-' * width}  ------")
    for key, label in (("miou", "mIoU"), ("pixel_acc", "pixel acc"), ("mean_acc", "mean acc"),
                       ("fw_iou", "FW IoU"), ("boundary_f", "boundary F")):
        if scores.get(key) is not None:
            lines.append(f"{label.ljust(width)}  {100 * scores[key]:6.2f}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    import torch

    from edgeseg.data import open_dataset
    from edgeseg.errors import EdgesegError
    from edgeseg.evaluate import evaluate_model
    from edgeseg.metrics import scores_from_confusion
    from edgeseg.models import load_model

    model, meta, name = load_model(args.checkpoint)
    source = open_dataset(args.data, args.split)
    if source.num_classes != meta.num_classes:
        raise EdgesegError(f"{args.checkpoint} predicts {meta.num_classes} classes, {args.data} has "
                           f"{source.num_classes}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cm = evaluate_model(model.to(device), source, num_classes=meta.num_classes, mean=meta.mean, std=meta.std,
                        device=device, max_images=args.max_images, boundary=args.boundary, progress=True)
    scores = scores_from_confusion(cm.matrix)
    if cm.boundary:
        scores.update(cm.boundary)
    result = {"model": name, "checkpoint": str(args.checkpoint), "data": args.data, "split": args.split,
              "images": min(len(source), args.max_images or len(source)), "classes": meta.classes, **scores}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{name} on {source.name} ({result['images']} images)")
        print(format_table(scores, meta.classes))
    return 0
