"""Training from cheap labels on the synthetic street scenes: dense masks against clicks (``points``), scribbles and
boxes, each with and without the gated CRF loss (Obukhov, Georgoulis, Dai, Van Gool, "Gated CRF Loss for Weakly
Supervised Semantic Image Segmentation", arXiv 1906.04651, 2019), at one small, equal CPU budget:

    python benchmarks/weak_supervision.py                 # 7 runs, writes benchmarks/results/weak_supervision.json
    python benchmarks/weak_supervision.py --trend         # and scribbles ± gCRF again at twice the iterations

Every run is BiSeNet V2 from scratch with the same seed, crop, batch, schedule and **iteration count** (not wall
time: the cores may be shared, so each run records ``os.getloadavg()``), and is scored on the same fixed dense
validation scenes. Torch runs one thread (``--threads``): on two cores shared with other busy processes, two
threads made a small LEDNet step tens of times slower than one (its threads spin waiting for each other). How to
read the JSON:

- ``runs[*].miou`` / ``per_class_iou`` / ``boundary_f`` (class boundaries within 2 px): on the val scenes;
  ``pct_of_full`` = 100 × mIoU / the dense run's mIoU (the paper's framing).
- ``runs[*].labels``: what the annotation gives, measured on the first ``label_scenes`` training scenes at full
  size: ``labelled_fraction`` (pixels with exactly one allowed class: the click or stroke pixels; 1 for dense;
  ~0 for boxes, whose pixels allow a set), ``informative_fraction`` (pixels whose allowed set excludes at least
  one class) and ``annotations_per_image`` (clicks, strokes or boxes).
- ``runs[*].seconds_per_step``: wall seconds per optimizer step, data loading included, under the recorded load.
- ``gcrf.kernel_check``: the gated CRF kernel on training crops at the configured σ: its mean between two cells of
  the same class against two of different classes. A ratio near 1 would mean the colour term cannot see the class
  edges at this resolution (σ too wide) and a mean near 0 within classes that it sees texture as edges (σ too
  narrow); the paper's σ_xy = 6 cells, σ_rgb = 0.1 are kept unless this says otherwise.
- ``verdict``: whether the gated CRF run beat its cross-entropy-only twin, per label kind. At a budget this small
  a gap of a point or two is within run-to-run noise; ``trend`` (with ``--trend``) shows the scribble pair at
  twice the steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeseg.crf.window import window
from edgeseg.data import open_dataset
from edgeseg.data.weak import WeakLabels
from edgeseg.evaluate import evaluate_model
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.train.config import SYNTHETIC_CPU_RECIPE, TrainConfig
from edgeseg.train.gated_crf import GatedCRFLoss
from edgeseg.train.trainer import Trainer

log = logging.getLogger("benchmarks.weak_supervision")
RESULTS = Path(__file__).resolve().parent / "results" / "weak_supervision.json"
WEAK_KINDS = ("points", "scribbles", "boxes")
SETTINGS = [("full", "none", False)] + [(f"{k}{' + gCRF' if g else ''}", k, g) for k in WEAK_KINDS
                                        for g in (False, True)]


@dataclasses.dataclass
class Budget:
    """What every run shares: model, steps, batch, crop, validation scenes, gated CRF settings."""

    model: str = "bisenetv2"
    iters: int = 40
    batch_size: int = 8
    crop: tuple[int, int] = (128, 256)
    val_images: int = 40
    label_scenes: int = 20
    workers: int = 2
    seed: int = 0
    gcrf_weight: float = 0.1
    gcrf_radius: int = 5
    gcrf_stride: int = 4
    gcrf_sigma_xy: float = 24.0
    gcrf_sigma_rgb: float = 0.1
    warmup: int = 5


def train_config(budget: Budget, weak: str, gcrf: bool, out: str, iters: int | None = None) -> TrainConfig:
    """The synthetic CPU recipe at ``budget``, with cross-entropy (OHEM and label relaxation do not fit sparse
    labels; the dense run uses plain cross-entropy too, so only the labels differ), float32, unweighted, and the
    scale and colour jitter this benchmark was measured with."""
    recipe = {**SYNTHETIC_CPU_RECIPE, "loss": "ce", "crop": budget.crop, "batch_size": budget.batch_size,
              "workers": budget.workers, "seed": budget.seed, "warmup": budget.warmup, "scales": (0.75, 1.5),
              "jitter": 0.3, "class_weights": None, "cpu_bf16": False}
    return TrainConfig(model=budget.model, out=out, iters=iters or budget.iters, weak=weak, weak_seed=budget.seed,
                       gcrf_weight=budget.gcrf_weight if gcrf else 0.0, gcrf_radius=budget.gcrf_radius,
                       gcrf_stride=budget.gcrf_stride, gcrf_sigma_xy=budget.gcrf_sigma_xy,
                       gcrf_sigma_rgb=budget.gcrf_sigma_rgb, val_max_images=1, log_every=10**6, **recipe)


def label_statistics(weak: str, source, scenes: int, seed: int) -> dict:
    """Labelled and informative pixel fractions and annotations per image of ``weak`` on the first ``scenes``
    training scenes at their full size (``none``: the dense labels themselves)."""
    labelled = informative = pixels = annotations = 0
    weak_labels = None if weak == "none" else WeakLabels(weak, source.classes, seed,
                                                         ignore_index=source.ignore_index)
    for i in range(scenes):
        _, label = source[i]
        if weak_labels is None:
            exact = label != source.ignore_index
            known = exact
        else:
            annotation = weak_labels.annotate(i, label)
            target = weak_labels.target(annotation, label, weak_labels.coordinates(label.shape))
            annotations += annotation.count
            if target.ndim == 2:
                exact = known = target != source.ignore_index
            else:
                count = target.sum(axis=0)
                exact, known = count == 1, (count >= 1) & (count < target.shape[0])
        labelled += int(exact.sum())
        informative += int(known.sum())
        pixels += label.size
    return {"labelled_fraction": round(labelled / pixels, 5), "informative_fraction": round(informative / pixels, 5),
            "annotations_per_image": None if weak_labels is None else round(annotations / scenes, 2),
            "scenes": scenes}


def kernel_check(budget: Budget, source, crops: int = 8) -> dict:
    """Mean gated CRF kernel between grid cells of the same class and of different classes (by the cells'
    majority label) on centre crops of the first ``crops`` training scenes, at the budget's σ and stride."""
    loss = GatedCRFLoss(budget.gcrf_radius, budget.gcrf_stride, budget.gcrf_sigma_xy, budget.gcrf_sigma_rgb)
    h, w = budget.crop
    images, labels = [], []
    for i in range(crops):
        image, label = source[i]
        y0, x0 = max(0, (image.shape[0] - h) // 2), max(0, (image.shape[1] - w) // 2)
        images.append(image[y0:y0 + h, x0:x0 + w])
        labels.append(label[y0:y0 + h, x0:x0 + w])
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(((np.stack(images) / 255.0 - mean) / std).transpose(0, 3, 1, 2)).float()
    y = torch.from_numpy(np.stack(labels).astype(np.int64)).clamp(max=source.num_classes)
    onehot = F.one_hot(y, source.num_classes + 1).permute(0, 3, 1, 2).float()
    cells = F.avg_pool2d(onehot, budget.gcrf_stride).argmax(1, keepdim=True).float()
    grid = cells.shape[2:]
    kernel = loss.kernel(x, torch.ones(len(images), 1, *grid))
    k = 2 * budget.gcrf_radius + 1
    same = (window(cells, k)[:, 0] == cells).float()
    same[:, (k * k) // 2] = 0.0  # a cell is not its own neighbour
    differ = 1.0 - same
    differ[:, (k * k) // 2] = 0.0
    k_same = float((kernel * same).sum() / same.sum())
    k_diff = float((kernel * differ).sum() / differ.sum().clamp(min=1.0))
    return {"mean_kernel_same_class": round(k_same, 4), "mean_kernel_different_class": round(k_diff, 5),
            "ratio": round(k_same / max(k_diff, 1e-12), 1), "crops": crops, "grid": list(grid)}


def run_setting(budget: Budget, name: str, weak: str, gcrf: bool, val_source, iters: int | None = None) -> dict:
    """Train one setting from scratch in a throw-away folder and score it on the dense val scenes."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgeseg-weakbench-") as tmp:
        config = train_config(budget, weak, gcrf, str(Path(tmp) / "run"), iters)
        trainer = Trainer(config)
        t0 = time.monotonic()
        trainer.run()
        train_s = time.monotonic() - t0
        t1 = time.monotonic()
        cm = evaluate_model(trainer.model, val_source, num_classes=trainer.num_classes, mean=trainer.meta.mean,
                            std=trainer.meta.std, device=trainer.device, max_images=budget.val_images,
                            boundary=True)
        val_s = time.monotonic() - t1
    scores = cm.compute()
    row = {"setting": name, "weak": weak, "gcrf": gcrf, "iterations": trainer.iteration,
           "miou": round(scores["miou"], 4), "pixel_acc": round(scores["pixel_acc"], 4),
           "boundary_f": round(cm.boundary["boundary_f"], 4),
           "per_class_iou": {c: None if v is None else round(v, 4)
                             for c, v in zip(trainer.train_source.classes, scores["per_class_iou"])},
           "seconds_per_step": round(train_s / max(trainer.iteration, 1), 3), "train_seconds": round(train_s, 1),
           "val_seconds": round(val_s, 1), "loadavg_before": [round(v, 2) for v in load_before],
           "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    log.info("%s: mIoU %.4f, boundary F %.4f, %.2f s/step", name, row["miou"], row["boundary_f"],
             row["seconds_per_step"])
    return row


def compare(runs: list[dict]) -> dict:
    """Per label kind that ran both ways: the gated CRF run's mIoU and boundary F minus its cross-entropy twin's."""
    verdict = {}
    for kind in WEAK_KINDS:
        pair = {r["gcrf"]: r for r in runs if r["weak"] == kind}
        if len(pair) == 2:
            verdict[kind] = {"miou_gain": round(pair[True]["miou"] - pair[False]["miou"], 4),
                             "boundary_f_gain": round(pair[True]["boundary_f"] - pair[False]["boundary_f"], 4),
                             "gcrf_better": pair[True]["miou"] > pair[False]["miou"]}
    return verdict


def run_benchmark(budget: Budget, settings=SETTINGS, trend: bool = False) -> dict:
    """Every setting at ``budget`` (and, with ``trend``, scribbles ± gCRF at twice the steps): the result
    document without the environment."""
    torch.manual_seed(budget.seed)
    train_source = open_dataset("synthetic", "train")
    val_source = open_dataset("synthetic", "val")
    stats = {weak: label_statistics(weak, train_source, budget.label_scenes, budget.seed)
             for weak in dict.fromkeys(w for _, w, _ in settings)}
    check = kernel_check(budget, train_source)
    log.info("gated CRF kernel: same class %.3f, different classes %.4f", check["mean_kernel_same_class"],
             check["mean_kernel_different_class"])
    runs = []
    for name, weak, gcrf in settings:
        log.info("== %s (%d steps)", name, budget.iters)
        runs.append({**run_setting(budget, name, weak, gcrf, val_source), "labels": stats[weak]})
    full = next((r["miou"] for r in runs if r["weak"] == "none"), None)
    for r in runs:
        r["pct_of_full"] = round(100 * r["miou"] / full, 1) if full else None
    verdict = compare(runs)
    result = {"benchmark": "weak_supervision", "budget": {**dataclasses.asdict(budget), "crop": list(budget.crop)},
              "val": f"the first {budget.val_images} synthetic val scenes at 256x512, dense labels, whole images",
              "gcrf": {"weight": budget.gcrf_weight, "radius": budget.gcrf_radius, "stride": budget.gcrf_stride,
                       "sigma_xy_px": budget.gcrf_sigma_xy, "sigma_rgb": budget.gcrf_sigma_rgb,
                       "kernel_check": check},
              "runs": runs, "verdict": verdict}
    if trend:
        pairs = []
        for gcrf in (False, True):
            name = f"scribbles{' + gCRF' if gcrf else ''} x2"
            log.info("== %s (%d steps)", name, 2 * budget.iters)
            row = run_setting(budget, name, "scribbles", gcrf, val_source, iters=2 * budget.iters)
            pairs.append({**row, "pct_of_full": round(100 * row["miou"] / full, 1) if full else None})
        result["trend"] = {"iters": 2 * budget.iters, "runs": pairs,
                           "miou_gain": round(pairs[1]["miou"] - pairs[0]["miou"], 4)}
    return result


def table(result: dict) -> str:
    """The runs as a text table."""
    rows = result["runs"] + result.get("trend", {}).get("runs", [])
    by_weak = {r["weak"]: r["labels"] for r in result["runs"]}
    header = ("setting", "steps", "mIoU", "% full", "boundary F", "labelled px", "annot./img", "s/step")
    return render_table(header, [
        (r["setting"], r["iterations"], f"{100 * r['miou']:.1f}",
         "-" if r["pct_of_full"] is None else f"{r['pct_of_full']:.0f}", f"{100 * r['boundary_f']:.1f}",
         f"{100 * by_weak[r['weak']]['labelled_fraction']:.2f}%",
         "-" if by_weak[r["weak"]]["annotations_per_image"] is None else by_weak[r["weak"]]["annotations_per_image"],
         f"{r['seconds_per_step']:.2f}") for r in rows], right=range(1, 8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Budget()
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--iters", type=int, default=defaults.iters, help="optimizer steps of every run")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, nargs=2, default=list(defaults.crop), metavar=("H", "W"))
    parser.add_argument("--val-images", type=int, default=defaults.val_images)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on shared cores more threads spin against each other)")
    parser.add_argument("--trend", action="store_true", help="also scribbles ± gCRF at twice the steps")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    budget = Budget(model=args.model, iters=args.iters, batch_size=args.batch_size, crop=tuple(args.crop),
                    val_images=args.val_images, workers=args.workers)
    t0 = time.monotonic()
    result = run_benchmark(budget, trend=args.trend)
    result["total_seconds"] = round(time.monotonic() - t0, 1)
    result["torch"] = torch.__version__
    result["torch_threads"] = torch.get_num_threads()
    result["environment"] = collect_environment()
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(table(result))
    env = result["environment"]
    print(f"\n{budget.model}, {budget.iters} steps of batch {budget.batch_size} at {budget.crop[0]}x{budget.crop[1]} "
          f"per run, on {env['cpu']} ({env['cpu_cores']} cores), {env['date']}")
    for kind, v in result["verdict"].items():
        print(f"{kind}: gated CRF {'+' if v['miou_gain'] >= 0 else ''}{100 * v['miou_gain']:.1f} mIoU points, "
              f"{'+' if v['boundary_f_gain'] >= 0 else ''}{100 * v['boundary_f_gain']:.1f} boundary F points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
