"""One localisation method behind ``edgeseg pseudo-label``: its classifier, its training loss, its per-image maps
(C, H, W in [0, 1]) and the refinement of its seeds (region growing for FickleNet, none for CAM and MDC)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
import torch

from edgeseg.weak.cam import CAMClassifier, build_classifier, normalise
from edgeseg.weak.mdc import MDC_DILATIONS, fuse
from edgeseg.weak.train import to_tensor


@dataclass
class Localiser:
    """``method`` (cam, mdc or ficklenet) with its ``model``; ``loss_fn`` is ``None`` when the model's own loss
    trains it."""

    method: str
    model: torch.nn.Module
    scales: tuple[float, ...] = (1.0,)
    options: dict = field(default_factory=dict)
    loss_fn: object = None

    @classmethod
    def build(cls, args: argparse.Namespace, num_classes: int) -> Localiser:
        """The localiser the command-line options describe (nothing is trained yet)."""
        dilations = MDC_DILATIONS if args.method == "mdc" else (1,)
        if args.method == "ficklenet":
            from edgeseg.weak.fickle import build_fickle

            model = build_fickle(num_classes, args.backbone, args.output_stride, args.width, args.window, args.p,
                                 args.max_expand_mb)
            options = {"n_maps": args.n_maps, "aggregate": args.aggregate, "max_mb": args.max_expand_mb,
                       "crf": args.crf, "grow": args.grow_threshold, "seed": args.seed}
            return cls(args.method, model, args.cam_scales, options)
        model = build_classifier(num_classes, dilations, args.backbone, args.output_stride, args.width)
        return cls(args.method, model, args.cam_scales)

    def maps(self, image: np.ndarray, tags: np.ndarray, index: int) -> np.ndarray:
        """(C, H, W) maps in [0, 1] for ``image`` (H, W, 3 uint8)."""
        x = to_tensor(image)
        if self.method == "ficklenet":
            from edgeseg.weak.fickle import stochastic_cams

            o = self.options
            return stochastic_cams(self.model, x, tags, o["n_maps"], seed=(o["seed"], index),
                                   aggregate=o["aggregate"], max_mb=o["max_mb"])[0].numpy()
        assert isinstance(self.model, CAMClassifier)
        maps = self.model.cams(x, self.scales)
        return normalise(fuse(maps))[0].numpy()

    def refine(self, seeds: np.ndarray, maps: np.ndarray, image: np.ndarray, tags: np.ndarray) -> np.ndarray:
        """FickleNet's seeds grown by DSRG's rule through a CRF; CAM and MDC seeds unchanged."""
        if self.method != "ficklenet":
            return seeds
        from edgeseg.weak.dsrg import crf_probabilities, grow

        probs = crf_probabilities(maps, image, tags, self.options["crf"])
        return grow(seeds, probs, tags, th_fg=self.options["grow"])

    def settings(self, args: argparse.Namespace) -> dict:
        """What the output's ``seeds.json`` records about the method."""
        out = {"backbone": args.backbone, "output_stride": args.output_stride, "width": args.width,
               "dilations": list(getattr(self.model, "dilations", (1,))), "cam_scales": list(self.scales),
               "fg": args.fg, "margin": args.margin, "lr": args.lr, "batch_size": args.batch_size,
               "seed": args.seed}
        if self.method == "ficklenet":
            out.update(window=args.window, p=args.p, **{k: v for k, v in self.options.items() if k != "seed"})
        return out
