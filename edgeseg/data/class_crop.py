"""Class-uniform crops: a fraction of training crops centred on a pixel of a class drawn uniformly from the
classes present in the sample, so thin and rare classes (poles, people) are seen in most batches.

This is the per-image form of the class-uniform sampling of Zhu et al., "Improving Semantic Segmentation via
Video Propagation and Label Relaxation" (CVPR 2019): there a fraction of an epoch's crops is centred on a class
chosen uniformly over the dataset; here the class is drawn among those the (scaled) sample holds, which needs
no index of the dataset and keeps a sample's crop a function of its own generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.data.transforms import RandomCrop


def class_centred_origin(label: np.ndarray, size: tuple[int, int], cls: int, rng: np.random.Generator
                         ) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop of ``label`` centred on a pixel of class ``cls`` drawn uniformly
    among that class's pixels; the crop is shifted (not shrunk) where the centre is near a border."""
    (ch, cw), (h, w) = size, label.shape
    flat = np.flatnonzero(label == cls)
    py, px = divmod(int(flat[rng.integers(0, flat.size)]), w)
    return min(max(py - ch // 2, 0), h - ch), min(max(px - cw // 2, 0), w - cw)


@dataclass
class ClassUniformCrop(RandomCrop):
    """A :class:`RandomCrop` that, with probability ``fraction``, centres the crop on a pixel of one class drawn
    uniformly from the classes present in the label (the ignore index never); otherwise a uniform random crop.
    Every draw comes from the sample's generator, so a crop is reproducible from its seed."""

    fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")

    def origin(self, label, rng) -> tuple[int, int]:
        if rng.random() >= self.fraction:
            return super().origin(label, rng)
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        present = present[present != self.ignore_index]
        if present.size == 0:
            return super().origin(label, rng)
        return class_centred_origin(label, self.size, int(present[rng.integers(0, present.size)]), rng)
