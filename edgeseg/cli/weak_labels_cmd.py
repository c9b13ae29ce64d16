"""``edgeseg weak-labels``: simulated clicks or scribbles of a fully labelled dataset, written as a ``folder:``
dataset (``images/``, ``labels/`` with 255 = unlabelled, ``classes.txt``), the format a user's own sparse labels
take for ``edgeseg train --data folder:DIR/images,DIR/labels --set weak=given gcrf_weight=0.1``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edgeseg.cli.args import non_negative_int, positive_int
from edgeseg.cli.common import examples

log = logging.getLogger(__name__)
MARKER = "weak_labels.json"
FORMAT = "edgeseg-weak-labels"
WRITTEN = ("images", "labels", "classes.txt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a fully labelled data spec: synthetic[:N], cityscapes:/path, "
                                                      "camvid:/path, voc:/path, ade20k:/path, folder:IMAGES,LABELS")
    parser.add_argument("--mode", required=True, choices=("points", "scribbles"),
                        help="points: one click per region, at its deepest point; scribbles: one stroke per region "
                             "(boxes and tags are allowed-class sets a label PNG cannot hold: train with "
                             "--set weak=boxes directly)")
    parser.add_argument("--out", required=True, help="folder to write (a new one, or an earlier weak-labels output)")
    parser.add_argument("--split", default="train", help="split of the data (default train)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="annotation seed: the same seed and data give the same labels (default 0)")
    parser.add_argument("--limit", type=positive_int, help="only the first N samples")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    examples(parser,
             "edgeseg weak-labels --data synthetic:200 --mode points --out clicks",
             "edgeseg weak-labels --data cityscapes:/data/cs --mode scribbles --seed 1 --out scribbles --json")


def main(args: argparse.Namespace) -> int:
    from PIL import Image

    from edgeseg.data import open_dataset, parse_spec
    from edgeseg.data.folder import sample_file_stem
    from edgeseg.data.weak import WeakLabels
    from edgeseg.errors import EdgesegError
    from edgeseg.fileio import FolderKind, refuse_input_overlap, staged_dir
    from edgeseg.progress import Progress
    from edgeseg.runtime.overlay import save_label_png
    from edgeseg.texttable import render_table

    if args.seed >= 2**32:
        raise EdgesegError(f"--seed must be below 2**32, got {args.seed}")
    spec = parse_spec(args.data)
    refuse_input_overlap(args.out, [*spec.paths, spec.depth])
    source = open_dataset(spec, args.split)
    weak = WeakLabels(args.mode, source.classes, args.seed, ignore_index=source.ignore_index)
    count = min(len(source), args.limit or len(source))
    kind = FolderKind(MARKER, FORMAT, "edgeseg weak-labels folder", lambda document: WRITTEN)
    annotations, labelled, pixels = 0, 0, 0
    with staged_dir(args.out, kind) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        (tmp / "classes.txt").write_text("".join(f"{name} {r} {g} {b}\n" for name, (r, g, b)
                                                 in zip(source.classes, source.palette)), encoding="utf-8")
        names: set[str] = set()
        bar = Progress(count, f"weak-labels {args.mode}")
        for index in range(count):
            image, label = source[index]
            annotation = weak.annotate(index, label)
            sparse = weak.target(annotation, label, weak.coordinates(label.shape))
            name = sample_file_stem(source.sample_id(index), index, names)
            Image.fromarray(image).save(tmp / "images" / f"{name}.png", format="PNG")
            save_label_png(tmp / "labels" / f"{name}.png", sparse, source.palette)
            annotations += annotation.count
            labelled += int((sparse != source.ignore_index).sum())
            pixels += sparse.size
            bar.update()
        bar.close()
        summary = {"data": str(spec), "split": args.split, "mode": args.mode, "seed": args.seed, "images": count,
                   "annotations_per_image": round(annotations / max(count, 1), 3),
                   "labelled_fraction": round(labelled / max(pixels, 1), 6), "out": str(Path(args.out))}
        (tmp / MARKER).write_text(json.dumps({"format": FORMAT, "version": 1, **summary}, indent=2) + "\n",
                                  encoding="utf-8")
    log.info("wrote %d images with %s labels to %s; train with --data folder:%s,%s --set weak=given", count,
             args.mode, args.out, Path(args.out) / "images", Path(args.out) / "labels")
    if args.json:
        print(json.dumps(summary))
    else:
        print(render_table(["images", "mode", "annotations/image", "labelled pixels", "out"],
                           [[count, args.mode, f"{summary['annotations_per_image']:.2f}",
                             f"{100 * summary['labelled_fraction']:.3f}%", summary["out"]]], right=(0, 2, 3)))
    return 0

