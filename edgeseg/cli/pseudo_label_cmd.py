"""``edgeseg pseudo-label``: train a tag classifier briefly, turn its localisation maps into seeds (255 = ignore)
and write them as a ``folder:`` dataset (``images/``, ``labels/``, ``classes.txt``, ``seeds.json``) for
``edgeseg train --data folder:DIR/images,DIR/labels`` or ``--set extra_train_data=[folder:...]``.

Methods: ``cam`` (Zhou et al., CVPR 2016), ``mdc`` (multi-dilated CAM, Wei et al., CVPR 2018), ``ficklenet``
(stochastic hidden-unit selection, Lee et al., CVPR 2019, with DSRG-style region growing, Huang et al., CVPR
2018). The data's dense labels give the tags (crop tags for training, image tags for the seeds) and score the seeds;
the seeds themselves never see a dense label.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from edgeseg.cli.args import fraction, non_negative_int, number, positive_int, positive_number
from edgeseg.cli.common import add_json, examples, print_json

log = logging.getLogger(__name__)
MARKER = "pseudo_labels.json"
FORMAT = "edgeseg-pseudo-labels"
WRITTEN = ("images", "labels", "classes.txt", "seeds.json")
METHODS = ("cam", "mdc", "ficklenet")


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated scales, e.g. 1,0.5,1.5, got {text!r}") from None
    if not values or any(not 0.1 <= v <= 4 for v in values):
        raise argparse.ArgumentTypeError(f"expected scales between 0.1 and 4, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, choices=METHODS,
                        help="cam: one block (d=1); mdc: blocks at dilations 1,3,6,9 fused as H0 + mean(dilated); "
                             "ficklenet: stochastic Grad-CAM over --n-maps passes, then region growing")
    parser.add_argument("--data", required=True, help="a labelled data spec (its labels give the tags and score the "
                                                      "seeds): synthetic[:N], cityscapes:/path, folder:IMAGES,LABELS")
    parser.add_argument("--tags", default="crop:64x128",
                        help="what the classifier trains on: image (whole-image tags) or crop:HxW (tags of HxW "
                             "tiles; street scenes need these) (default: crop:64x128)")
    parser.add_argument("--out", required=True, help="folder to write (a new one, or an earlier pseudo-label output)")
    parser.add_argument("--split", default="train", help="split of the data (default: train)")
    parser.add_argument("--limit", type=positive_int, help="seed only the first N images (default: all)")
    parser.add_argument("--train-images", type=positive_int, default=100,
                        help="the classifier trains on the first N images, kept in memory (default: 100)")
    parser.add_argument("--train-steps", type=positive_int, default=30, help="classifier steps (default: 30)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="crops per step (default: 8)")
    parser.add_argument("--lr", type=positive_number, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--backbone", default="resnet18", choices=("resnet18", "resnet34", "resnet50"),
                        help="classifier backbone, randomly initialised (default: resnet18)")
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16, 32),
                        help="backbone output stride (default: 8)")
    parser.add_argument("--width", type=positive_int, default=128, help="channels of each CAM block (default: 128)")
    parser.add_argument("--cam-scales", type=_scales, default=(1.0,),
                        help="inference scales, summed with their flips (irn uses 1,0.5,1.5,2) (default: 1)")
    parser.add_argument("--fg", type=fraction, default=0.3,
                        help="a seed's map value must reach this (maps are max-normalised) (default: 0.3)")
    parser.add_argument("--margin", type=number(0, 1), default=0.1,
                        help="and beat the runner-up tagged class by this (default: 0.1)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="tags, batches and dropout (default: 0)")
    fickle = parser.add_argument_group("ficklenet")
    fickle.add_argument("--n-maps", type=positive_int, default=10,
                        help="stochastic passes per image (the paper uses many more; CPU default) (default: 10)")
    fickle.add_argument("--p", type=number(0, 1, open_high=True), default=0.9,
                        help="dropout rate of the non-centre window positions (default: 0.9)")
    fickle.add_argument("--window", type=int, default=3, help="FickleNet window k, odd (default: 3)")
    fickle.add_argument("--aggregate", choices=("union", "mean"), default="union",
                        help="how the pass maps combine: union (max) or mean (default: union)")
    fickle.add_argument("--max-expand-mb", type=positive_number, default=512.0,
                        help="refuse an expanded feature map larger than this (default: 512)")
    fickle.add_argument("--crf", choices=("conv", "dense"), default="conv",
                        help="CRF in region growing: conv (ConvCRF, torch) or dense (pydensecrf2, the reference) "
                             "(default: conv)")
    fickle.add_argument("--grow-threshold", type=fraction, default=0.85,
                        help="region growing accepts a CRF probability above this (DSRG's th_fg) (default: 0.85)")
    add_json(parser, "the summary")
    examples(parser,
             "edgeseg pseudo-label --method mdc --data synthetic:200 --tags crop:64x128 --out seeds-mdc",
             "edgeseg pseudo-label --method cam --data synthetic:50 --train-steps 200 --out seeds-cam --json",
             "edgeseg pseudo-label --method ficklenet --data synthetic:50 --n-maps 20 --crf dense --out seeds-fn")


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from edgeseg.data import open_dataset, parse_spec
    from edgeseg.data.folder import sample_file_stem
    from edgeseg.data.weak import WeakLabels
    from edgeseg.errors import EdgesegError
    from edgeseg.fileio import FolderKind, check_replaceable, refuse_input_overlap, staged_dir
    from edgeseg.progress import Progress
    from edgeseg.runtime.overlay import save_label_png
    from edgeseg.texttable import render_table
    from edgeseg.weak.pipeline import Localiser
    from edgeseg.weak.seeds import SeedScore, seeds_from_maps
    from edgeseg.weak.train import tag_statistics, tagged_crops, train_classifier

    if args.seed >= 2**32:
        raise EdgesegError(f"--seed must be below 2**32, got {args.seed}")
    spec = parse_spec(args.data)
    refuse_input_overlap(args.out, [*spec.paths, spec.depth])
    source = open_dataset(spec, args.split)
    kind = FolderKind(MARKER, FORMAT, "edgeseg pseudo-label folder", lambda document: WRITTEN)
    check_replaceable(args.out, kind)
    count = min(len(source), args.limit or len(source))
    torch.manual_seed(args.seed)
    localiser = Localiser.build(args, source.num_classes)
    started = time.perf_counter()
    n_train = min(args.train_images, len(source))
    samples = [source[i] for i in range(n_train)]
    crops = tagged_crops(WeakLabels(args.tags, source.classes, args.seed, ignore_index=source.ignore_index),
                         [label for _, label in samples])
    losses = train_classifier(localiser.model, [image for image, _ in samples], crops, args.train_steps,
                              args.batch_size, args.lr, args.seed, localiser.loss_fn)
    del samples
    train_s = time.perf_counter() - started
    image_tags = WeakLabels("image", source.classes, args.seed, ignore_index=source.ignore_index)
    score = SeedScore(source.num_classes, source.ignore_index)
    has_truth = False
    started = time.perf_counter()
    with staged_dir(args.out, kind) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        (tmp / "classes.txt").write_text("".join(f"{name} {r} {g} {b}\n" for name, (r, g, b)
                                                 in zip(source.classes, source.palette)), encoding="utf-8")
        names: set[str] = set()
        bar = Progress(count, f"pseudo-label {args.method}")
        for index in range(count):
            image, label = source[index]
            tags = image_tags.annotate(index, label).base
            maps = localiser.maps(image, tags, index)
            seeds = seeds_from_maps(maps, tags, args.fg, args.margin, source.ignore_index)
            seeds = localiser.refine(seeds, maps, image, tags)
            if (label != source.ignore_index).any():
                has_truth = True
                score.update(seeds, label)
            name = sample_file_stem(source.sample_id(index), index, names)
            Image.fromarray(image).save(tmp / "images" / f"{name}.png", format="PNG")
            save_label_png(tmp / "labels" / f"{name}.png", seeds, source.palette)
            bar.update()
        bar.close()
        seed_s = time.perf_counter() - started
        quality = score.compute(list(source.classes)) if has_truth else None
        summary = {"method": args.method, "data": str(spec), "split": args.split, "tags": args.tags,
                   "images": count, "train_images": n_train, "train_steps": args.train_steps,
                   "final_loss": round(float(np.mean(losses[-5:])), 5), "train_seconds": round(train_s, 2),
                   "seconds_per_image": round(seed_s / max(count, 1), 4), "quality": quality,
                   "out": str(Path(args.out))}
        document = {"format": FORMAT, "version": 1, **summary, "settings": localiser.settings(args),
                    "tag_statistics": tag_statistics(crops, list(source.classes)), "versions": _versions()}
        (tmp / "seeds.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        (tmp / MARKER).write_text(json.dumps({"format": FORMAT, "version": 1, "method": args.method},
                                             indent=2) + "\n", encoding="utf-8")
    log.info("wrote %d seed maps to %s; train with --data folder:%s,%s (or --set extra_train_data=[folder:...])",
             count, args.out, Path(args.out) / "images", Path(args.out) / "labels")
    if args.json:
        print_json(summary)
        return 0
    rows = [[args.method, count, *(_pct(quality and quality[k]) for k in ("precision", "coverage",
                                                                          "seeded_fraction", "miou")),
             f"{summary['seconds_per_image']:.3f}"]]
    print(render_table(["method", "images", "precision", "coverage", "seeded", "mIoU", "s/image"], rows,
                       right=(1, 2, 3, 4, 5, 6)))
    if quality:
        per = quality["per_class"]
        print(render_table(["class", "precision", "recall (coverage)", "IoU"],
                           [[n, _pct(v["precision"]), _pct(v["recall"]), _pct(v["iou"])] for n, v in per.items()],
                           right=(1, 2, 3)))
    return 0


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _versions() -> dict:
    import torch

    from edgeseg import __version__

    return {"edgeseg": __version__, "torch": torch.__version__}
