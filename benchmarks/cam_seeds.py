"""Seed quality of CAM, multi-dilated CAM (MDC) and FickleNet on the synthetic scenes (CPU).

For each method the same classifier budget (``--steps`` Adam steps on crop tags of the first ``--train-images``
scenes, ResNet-18) is trained, then seeds are made for ``--eval-images`` scenes from image-level tags only and
scored against the dense labels (:class:`edgeseg.weak.seeds.SeedScore`).

How to read ``results/cam_seeds.json``: per method, ``precision`` is the share of seeded pixels whose class is
right, ``coverage`` the share of labelled pixels that got a right seed (recall over all classes), ``per_class``
gives precision and recall (how much of each class the seeds cover), ``seconds`` the training and seeding time.
The claim to test (Wei et al., CVPR 2018) is that MDC covers more of each object than CAM at similar precision;
FickleNet (Lee et al., CVPR 2019) should cover more again. ``load_average`` records how busy the shared CPU was:
seconds are comparable only within one run. ``tag_statistics`` shows how informative the crop tags were.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgeseg.data.synthetic_source import SyntheticSource
from edgeseg.data.weak import WeakLabels
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.weak.pipeline import Localiser
from edgeseg.weak.seeds import SeedScore, seeds_from_maps
from edgeseg.weak.train import tag_statistics, tagged_crops, train_classifier


def run(method: str, args, train, evaluation) -> dict:
    ns = argparse.Namespace(method=method, backbone="resnet18", output_stride=args.output_stride, width=64,
                            window=3, p=args.p, n_maps=args.n_maps, aggregate="union", max_expand_mb=512.0,
                            crf="conv", grow_threshold=0.85, seed=0, cam_scales=(1.0,))
    torch.manual_seed(0)
    localiser = Localiser.build(ns, 8)
    start = time.perf_counter()
    crops = tagged_crops(WeakLabels(args.tags, train.classes), [label for _, label in args.train_samples])
    losses = train_classifier(localiser.model, [image for image, _ in args.train_samples], crops, args.steps,
                              8, 1e-3, 0, localiser.loss_fn)
    train_s = time.perf_counter() - start
    tagger, score = WeakLabels("image", train.classes), SeedScore(8)
    start = time.perf_counter()
    for index in range(len(evaluation)):
        image, label = evaluation[index]
        tags = tagger.annotate(index, label).base
        maps = localiser.maps(image, tags, index)
        seeds = localiser.refine(seeds_from_maps(maps, tags, args.fg, args.margin), maps, image, tags)
        score.update(seeds, label)
    quality = score.compute(list(train.classes))
    return {"method": method, **quality, "final_loss": round(float(np.mean(losses[-5:])), 4),
            "train_seconds": round(train_s, 1),
            "seed_seconds_per_image": round((time.perf_counter() - start) / len(evaluation), 3),
            "tag_statistics": tag_statistics(crops, list(train.classes))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=60)
    parser.add_argument("--eval-images", type=int, default=20)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", default="128x256", help="scene size HxW (default 128x256, CPU-sized)")
    parser.add_argument("--tags", default="crop:32x64")
    parser.add_argument("--output-stride", type=int, default=8)
    parser.add_argument("--n-maps", type=int, default=10)
    parser.add_argument("--p", type=float, default=0.9)
    parser.add_argument("--fg", type=float, default=0.3)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--methods", default="cam,mdc,ficklenet")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cam_seeds.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    size = tuple(int(v) for v in args.size.split("x"))
    train = SyntheticSource("train", args.train_images, size)
    args.train_samples = [train[i] for i in range(len(train))]
    evaluation = SyntheticSource("train", args.eval_images, size)  # seeds are made for training scenes
    load_before = os.getloadavg()
    rows = [run(m, args, train, evaluation) for m in args.methods.split(",")]
    env = collect_environment()
    document = {"benchmark": "cam_seeds", "date": env.get("date"), "machine": env,
                "load_average_before": load_before, "load_average_after": os.getloadavg(),
                "settings": {k: v for k, v in vars(args).items() if k != "train_samples"}, "results": rows}
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(render_table(["method", "precision", "coverage", "mIoU", "train s", "s/image"],
                       [[r["method"], r["precision"], r["coverage"], r["miou"], r["train_seconds"],
                         r["seed_seconds_per_image"]] for r in rows], right=(1, 2, 3, 4, 5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
