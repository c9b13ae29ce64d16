"""Video propagation (Zhu et al., CVPR 2019) on synthetic dolly clips: how accurate the propagated labels are at
each step k, and what the propagated pairs do for a short BiSeNet V2 training.

Data: ``--sequences`` synthetic ``dolly`` clips (the camera drives forward into the scene; exact labels and motion
known) of ``2K+1`` frames at 128×256; only the centre frame of each counts as labelled. Propagation runs ±1..K
with OpenCV DIS flow (medium preset) and the forward-backward check, as ``edgeseg propagate`` does by default.

**Accuracy** (first table): for each |k| and flow (the exact motion; DIS medium with and without the check; DIS
ultrafast, a cheaper and worse flow), the propagated label against the *real* frame's true label: pixel
accuracy, mIoU and boundary F (2 px) over the pixels both label, and coverage (the share of the true label's
pixels the propagated one keeps; the rest is 255). This is exactly how well a **label-only** (LP) pair is
aligned. A **joint** (JP) pair carries the same label with the frame synthesised by the same warp, so it is
aligned by construction; what JP pays instead is the synthesised frame's error, its PSNR against the real frame
(over the labelled pixels). Autoregressive warping loses a little at every step, so accuracy falls with k even
with the exact motion.

**Downstream** (second table): BiSeNet V2 trained from scratch for the same ``--iters`` iterations (same batch,
crop, optimiser, seed) on (a) the centre frames only, (b) + the LP pairs ±1..K, (c) + the JP pairs ±1..K, each
with cross-entropy and with label relaxation; scored on the 100 synthetic val scenes at 128×256: mIoU, boundary
F and per-class IoU.

How to read it: the paper's claims, in relative form, are JP > LP and relaxation helping more with propagated
labels. Read the downstream deltas against the run-to-run noise of such short trainings (the centre-only run is
repeated with another seed: ``noise_miou``); a gap smaller than that is no evidence either way. JP can only win
where LP pairs are misaligned: when the accuracy table shows DIS within a point of the exact motion, LP pairs are
nearly as aligned as JP's, and JP's blurrier, resampled frames may cost more than the alignment gains.

    python benchmarks/propagation.py [--sequences 200] [--steps 3] [--iters 70] [--out results/propagation.json]

Writes ``benchmarks/results/propagation.json`` with the machine, the load average before and after (the CPUs may
be shared), and the wall and CPU time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeseg.data.base import SegmentationSource
from edgeseg.data.synthetic import CLASSES, PALETTE
from edgeseg.data.synthetic_source import SyntheticSource
from edgeseg.evaluate import evaluate_model
from edgeseg.fileio import write_text_atomic
from edgeseg.metrics import BoundaryFScore, ConfusionMatrix
from edgeseg.progress import Progress
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.train.config import TrainConfig
from edgeseg.train.trainer import Trainer
from edgeseg.video.flow import ConsistencyCheck, DISFlow, ExactFlow
from edgeseg.video.propagate import propagate_clip, psnr
from edgeseg.video.sequences import render_sequence

log = logging.getLogger("benchmarks.propagation")
RESULTS = Path(__file__).resolve().parent / "results" / "propagation.json"
SIZE = (128, 256)


class ArraySource(SegmentationSource):
    """Training pairs held in memory."""

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], name: str) -> None:
        super().__init__(CLASSES, PALETTE)
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


class Scores:
    """Propagated label against the truth, per |k|: confusion matrix, boundary F, coverage, PSNR, check drops."""

    def __init__(self) -> None:
        self.cm, self.bf = ConfusionMatrix(len(CLASSES)), BoundaryFScore()
        self.truth = self.covered = self.pixels = self.dropped = 0
        self.psnr: list[float] = []

    def add(self, pair, truth: np.ndarray, real: np.ndarray) -> None:
        labelled = pair.label != 255
        both = labelled & (truth != 255)
        self.cm.update(np.where(both, pair.label, 0), np.where(both, truth, 255))
        self.bf.update(np.where(both, pair.label, 255), np.where(both, truth, 255))
        self.truth += int((truth != 255).sum())
        self.covered += int(both.sum())
        self.pixels += labelled.size
        self.dropped += int(pair.masked.sum())
        value = psnr(pair.synthesised, real, pair.inside & labelled)
        if value is not None and np.isfinite(value):
            self.psnr.append(value)

    def row(self) -> dict:
        s = self.cm.compute()
        return {"pixel_acc": round(s["pixel_acc"], 4), "miou": round(s["miou"], 4),
                "boundary_f": round(self.bf.compute()["boundary_f"], 4),
                "coverage": round(self.covered / max(self.truth, 1), 4),
                "dropped_by_check": round(self.dropped / max(self.pixels, 1), 4),
                "jp_psnr_db": round(float(np.mean(self.psnr)), 2) if self.psnr else None}


def propagate_all(args) -> tuple[dict, dict, dict]:
    """Render the clips, propagate with every flow setting; returns accuracy rows, the training sets, timings."""
    settings = {"exact": (ExactFlow(), ConsistencyCheck()), "dis": (DISFlow("medium"), ConsistencyCheck()),
                "dis_no_check": (DISFlow("medium"), None), "dis_ultrafast": (DISFlow("ultrafast"), ConsistencyCheck())}
    scores = {name: {k: Scores() for k in range(1, args.steps + 1)} for name in settings}
    sets = {"centre": ([], []), "label": ([], []), "joint": ([], [])}
    seconds = dict.fromkeys(["render", *settings], 0.0)
    flow_calls = 0
    bar = Progress(args.sequences, "propagate")
    for i in range(args.sequences):
        t0 = time.process_time()
        clip = render_sequence(i, SIZE, 2 * args.steps + 1, "dolly")
        seconds["render"] += time.process_time() - t0
        sets["centre"][0].append(clip.frame(0))
        sets["centre"][1].append(clip.true_label(0))
        for name, (estimator, check) in settings.items():
            if name != "dis" and i >= args.accuracy_sequences:
                continue
            t0 = time.process_time()
            pairs, _ = propagate_clip(clip, clip.true_label(0), args.steps, estimator, check=check)
            seconds[name] += time.process_time() - t0
            if name == "dis":
                flow_calls += len(pairs) * 2
            for pair in pairs:
                scores[name][abs(pair.offset)].add(pair, clip.true_label(pair.offset), clip.frame(pair.offset))
                if name == "dis":
                    sets["label"][0].append(clip.frame(pair.offset))
                    sets["joint"][0].append(np.clip(np.rint(pair.synthesised), 0, 255).astype(np.uint8))
                    sets["label"][1].append(pair.label)
                    sets["joint"][1].append(pair.label)
        bar.update()
    bar.close()
    rows = [{"flow": name, "k": k, "sequences": args.sequences if name == "dis" else min(args.sequences,
                                                                                         args.accuracy_sequences),
             **s.row()} for name, per_k in scores.items() for k, s in per_k.items()]
    timing = {"render_cpu_s": round(seconds["render"], 1),
              "propagate_cpu_s": {name: round(seconds[name], 1) for name in settings},
              "dis_cpu_ms_per_flow": round(1000 * seconds["dis"] / max(flow_calls, 1), 1)}
    return rows, sets, timing


def train(args, name: str, loss: str, images: list, labels: list, seed: int, root: Path) -> dict:
    config = TrainConfig(model="bisenetv2", data="synthetic:1", out=str(root / f"{name}_{loss}_{seed}"),
                         iters=args.iters, batch_size=args.batch, crop=tuple(args.crop), scales=(0.75, 1.25),
                         optimizer="adamw", lr=3e-3, weight_decay=1e-4, loss=loss, warmup=10, val_every=10**9,
                         checkpoint_every=10**9, val_max_images=1, workers=0, seed=seed, log_every=10**6)
    trainer = Trainer(config)
    trainer.train_source = ArraySource(images, labels, name)
    val = SyntheticSource("val", size=SIZE)
    trainer.val_source = val
    t0, c0 = time.monotonic(), time.process_time()
    trainer.run()
    train_wall, train_cpu = time.monotonic() - t0, time.process_time() - c0
    cm = evaluate_model(trainer.model, val, num_classes=len(CLASSES), mean=trainer.meta.mean, std=trainer.meta.std,
                        max_images=args.val_images, boundary=True)
    scores = cm.compute()
    return {"train_set": name, "loss": loss, "seed": seed, "pairs": len(images), "iterations": trainer.iteration,
            "miou": round(scores["miou"], 4), "pixel_acc": round(scores["pixel_acc"], 4),
            "boundary_f": round(cm.boundary["boundary_f"], 4),
            "per_class_iou": {c: None if v is None else round(v, 4) for c, v in zip(CLASSES, scores["per_class_iou"])},
            "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=200, help="dolly clips (their centre frames are labelled)")
    parser.add_argument("--accuracy-sequences", type=int, default=50,
                        help="clips for the accuracy rows other than DIS medium with the check (that one uses all)")
    parser.add_argument("--steps", type=int, default=3, help="K: propagate ±1..K")
    parser.add_argument("--iters", type=int, default=70, help="training iterations per downstream run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(96, 192))
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenCV threads (on shared cores one thread wastes far less CPU time waiting)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    DISFlow().cv2.setNumThreads(args.threads)
    load_before = os.getloadavg()
    wall0, cpu0 = time.monotonic(), time.process_time()

    accuracy, sets, timing = propagate_all(args)
    centre = sets["centre"]
    train_sets = {"centre": centre,
                  "centre+label": (centre[0] + sets["label"][0], centre[1] + sets["label"][1]),
                  "centre+joint": (centre[0] + sets["joint"][0], centre[1] + sets["joint"][1])}
    downstream = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-propagation-") as tmp:
        runs = [(name, loss, 0) for loss in ("ce", "relax") for name in train_sets] + [("centre", "ce", 1)]
        for name, loss, seed in runs:
            log.info("== train on %s with %s (seed %d)", name, loss, seed)
            downstream.append(train(args, name, loss, *train_sets[name], seed, Path(tmp)))
    by = {(r["train_set"], r["loss"], r["seed"]): r for r in downstream}
    noise = abs(by[("centre", "ce", 0)]["miou"] - by[("centre", "ce", 1)]["miou"])
    comparison = {loss: {"joint_minus_label_miou": round(by[("centre+joint", loss, 0)]["miou"]
                                                         - by[("centre+label", loss, 0)]["miou"], 4),
                         "joint_minus_centre_miou": round(by[("centre+joint", loss, 0)]["miou"]
                                                          - by[("centre", loss, 0)]["miou"], 4),
                         "label_minus_centre_miou": round(by[("centre+label", loss, 0)]["miou"]
                                                          - by[("centre", loss, 0)]["miou"], 4)}
                  for loss in ("ce", "relax")}
    result = {"benchmark": "propagation",
              "paper": "Zhu et al., Improving Semantic Segmentation via Video Propagation and Label Relaxation, "
                       "CVPR 2019 (arXiv 1812.01593)",
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "out"},
              "frame_size": list(SIZE), "motion": "dolly", "torch": torch.__version__,
              "accuracy": accuracy, "timing": timing, "downstream": downstream, "comparison": comparison,
              "noise_miou": round(noise, 4),
              "wall_s": round(time.monotonic() - wall0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "environment": collect_environment()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(render_table(("flow", "k", "clips", "pixel acc", "mIoU", "boundary F", "coverage", "dropped", "JP PSNR dB"),
                       [(r["flow"], r["k"], r["sequences"], r["pixel_acc"], r["miou"], r["boundary_f"], r["coverage"],
                         r["dropped_by_check"], r["jp_psnr_db"]) for r in accuracy], right=range(1, 9)))
    print()
    print(render_table(("train set", "loss", "seed", "pairs", "iters", "val mIoU", "boundary F", "pixel acc"),
                       [(r["train_set"], r["loss"], r["seed"], r["pairs"], r["iterations"], r["miou"], r["boundary_f"],
                         r["pixel_acc"]) for r in downstream], right=range(2, 8)))
    print(f"\nJP - LP mIoU: ce {comparison['ce']['joint_minus_label_miou']:+.4f}, relax "
          f"{comparison['relax']['joint_minus_label_miou']:+.4f}; seed-to-seed noise {noise:.4f}. "
          f"wall {result['wall_s']:.0f} s, CPU {result['cpu_s']:.0f} s, load {load_before[0]:.1f} -> "
          f"{result['load_average_after'][0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
