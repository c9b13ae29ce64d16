"""Label propagation along a clip: joint image-label propagation (JP) and label-only propagation (LP).

Zhu, Sapra, Reda et al., "Improving Semantic Segmentation via Video Propagation and Label Relaxation" (CVPR
2019, arXiv 1812.01593) synthesise training pairs from the frames around a labelled one. Step ``k`` (forward;
backward is the mirror image) is autoregressive, as in the official ``sdc_aug.py``:

* the motion is estimated between the *real* frames: the flow ``f`` from ``I[t+k]`` back to ``I[t+k-1]``
  (reconstruction style: the target frame is seen, as in the released ``SDCNet2DRecon``);
* the label of step ``k-1`` is warped with it by nearest neighbour: ``L~[t+k](x) = L~[t+k-1](x + f(x))``;
* the image of step ``k-1`` is warped with the same field, bilinearly: ``I~[t+k](x) = I~[t+k-1](x + f(x))``;
* samples from outside the frame become 255 (ignore) in the label; with the forward-backward check on (not in
  the paper), so do pixels where ``f`` and the flow from ``I[t+k-1]`` to ``I[t+k]`` disagree.

The two modes differ only in the image the label is paired with. **JP** pairs ``L~`` with the synthesised
``I~``: both moved by the same field, so they are aligned by construction even where the flow is wrong. **LP**
pairs ``L~`` with the real frame ``I[t+k]``: where the flow is wrong the pair is misaligned. In JP the pixels of
``I~`` whose sample fell outside the frame (their label is 255) are filled from the real frame. ``I~`` is kept in
both modes, so its error against the real frame (PSNR) is measured either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX
from edgeseg.video.clips import Clip
from edgeseg.video.flow import ConsistencyCheck, MotionEstimator, warp_bilinear, warp_nearest

MODES = ("joint", "label")
DEFAULT_CHECK = ConsistencyCheck()


@dataclass
class Propagated:
    """One synthesised pair at ``offset`` from the labelled frame: ``image`` (uint8 RGB, the pair's image for the
    mode) and ``label`` (255 = ignore), with ``synthesised`` (the warped image I~ as float32, whatever the mode),
    ``inside`` (pixels of I~ sampled inside the frame) and ``masked`` (pixels the consistency check dropped at
    this step)."""

    offset: int
    image: np.ndarray
    label: np.ndarray
    synthesised: np.ndarray
    inside: np.ndarray
    masked: np.ndarray


def propagate_clip(clip: Clip, label: np.ndarray, steps: int, estimator: MotionEstimator, *, mode: str = "joint",
                   check: ConsistencyCheck | None = DEFAULT_CHECK, directions: tuple[int, ...] = (1, -1)
                   ) -> tuple[list[Propagated], int]:
    """Propagate ``label`` (of the clip's frame 0) ``steps`` frames each way. Returns the pairs in the order
    +1..+K, -1..-K, and how many steps were not made because a frame was missing (a direction stops at its
    first missing frame; the official script exits there instead)."""
    if mode not in MODES:
        raise EdgesegError(f"unknown propagation mode {mode!r}; choose joint or label")
    if steps < 1:
        raise EdgesegError(f"--steps must be at least 1, got {steps}")
    centre = clip.frame(0)
    if centre.shape[:2] != label.shape:
        raise EdgesegError(f"{clip.name}: the label is {label.shape[1]}x{label.shape[0]}, the frame "
                           f"{centre.shape[1]}x{centre.shape[0]}")
    out: list[Propagated] = []
    missing = 0
    for direction in directions:
        image, current = centre.astype(np.float32), label
        for k in range(1, steps + 1):
            target, source = direction * k, direction * (k - 1)
            if not clip.has(target):
                missing += steps - k + 1
                break
            real = clip.frame(target)
            if real.shape != centre.shape:
                raise EdgesegError(f"{clip.name}: frame {target:+d} is {real.shape[1]}x{real.shape[0]}, the labelled "
                                   f"frame {centre.shape[1]}x{centre.shape[0]}")
            flow = estimator.flow(clip, target, source)
            current = warp_nearest(current, flow)
            image, inside = warp_bilinear(image, flow)
            masked = np.zeros(current.shape, bool)
            if check is not None:
                masked = check.inconsistent(flow, estimator.flow(clip, source, target)) & (current != IGNORE_INDEX)
                current = np.where(masked, np.uint8(IGNORE_INDEX), current)
            image = np.where(inside[..., None], image, real.astype(np.float32))
            pair = np.clip(np.rint(image), 0, 255).astype(np.uint8) if mode == "joint" else real
            out.append(Propagated(target, pair, current, image, inside, masked))
    return out, missing


def psnr(synthesised: np.ndarray, real: np.ndarray, mask: np.ndarray) -> float | None:
    """PSNR in dB of ``synthesised`` against ``real`` over ``mask`` (None when the mask is empty)."""
    if not mask.any():
        return None
    mse = float(((synthesised.astype(np.float64) - real.astype(np.float64))[mask] ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
