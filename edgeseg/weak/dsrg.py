"""Seeded region growing (Huang, Wang, Wang, Liu, Wang, "Weakly-Supervised Semantic Segmentation Network with Deep
Seeded Region Growing", CVPR 2018), the pseudo-label stage FickleNet uses, with edgeseg's ConvCRF in place of the
dense CRF (``crf="conv"``, torch; the dense CRF through pydensecrf2 with ``crf="dense"`` for fidelity).

Rule (DSRG's ``generate_seed_step``, thresholds from its ``train-s.prototxt``): with ``Q`` the CRF-refined
probabilities over the tagged classes (and background when there is one), an unlabelled pixel takes
``c* = argmax Q`` when ``Q_c* > th_fg`` (foreground) or ``> th_bg`` (background), and is kept only if its
8-connected region of class ``c*`` contains an original seed of ``c*``. Growth always starts from the original
seeds, never from an earlier growth.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.crf.params import CRFParams
from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX

LOGIT_SCALE = 8.0  # maps in [0, 1] → logits: a map of 1 against 0 is e^8 ≈ 3000 : 1 before the CRF


def _logits(maps: np.ndarray, tags: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(tags, bool)[:, None, None], LOGIT_SCALE * maps, -1e4).astype(np.float32)


def crf_probabilities(maps: np.ndarray, image: np.ndarray, tags: np.ndarray, crf: str = "conv",
                      params: CRFParams | None = None) -> np.ndarray:
    """(C, H, W) CRF-refined probabilities over the tagged classes from maps (C, H, W) in [0, 1] and the RGB image
    (H, W, 3 uint8). ConvCRF's grid blur is the largest of 4, 2, 1 that divides the image size."""
    logits = _logits(maps, tags)
    h, w = logits.shape[1:]
    if crf == "conv":
        from edgeseg.crf.convcrf import ConvCRF

        blur = next(b for b in (4, 2, 1) if h % b == 0 and w % b == 0)
        p = params or CRFParams(blur=blur)
        model = ConvCRF(logits.shape[0], p)
        with torch.no_grad():
            out = model(torch.from_numpy(logits)[None], torch.from_numpy(image).permute(2, 0, 1)[None].float())
        return torch.softmax(out, dim=1)[0].numpy()
    if crf == "dense":
        from edgeseg.runtime.dense_crf import load_densecrf, softmax

        p = params or CRFParams()
        dcrf = load_densecrf()
        model = dcrf.DenseCRF2D(w, h, logits.shape[0])
        probs = softmax(logits)
        model.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(probs, 1e-8, 1.0)).reshape(len(probs), -1)))
        model.addPairwiseGaussian(sxy=p.gaussian_sigma_xy, compat=p.gaussian_weight)
        model.addPairwiseBilateral(sxy=p.bilateral_sigma_xy, srgb=p.bilateral_sigma_rgb,
                                   rgbim=np.ascontiguousarray(image), compat=p.bilateral_weight)
        return np.asarray(model.inference(p.iterations), np.float32).reshape(logits.shape)
    raise EdgesegError(f"region growing CRF must be conv or dense, got {crf!r}")


def grow(seeds: np.ndarray, probs: np.ndarray, tags: np.ndarray, th_fg: float = 0.85, th_bg: float = 0.99,
         background: int | None = None, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``seeds`` (H, W uint8, ``ignore_index`` = unlabelled) grown into the pixels whose most probable tagged class
    (``probs`` (C, H, W)) passes its threshold and connects (8-connected, through that class) to an original seed
    of that class. ``background`` names the class held to ``th_bg`` (none on street scenes)."""
    from scipy import ndimage

    candidates = np.asarray(tags, bool).copy()
    if background is not None:
        candidates[background] = True
    masked = np.where(candidates[:, None, None], probs, -1.0)
    best, value = masked.argmax(axis=0), masked.max(axis=0)
    threshold = np.full(best.shape, th_fg, np.float32)
    if background is not None:
        threshold[best == background] = th_bg
    accept = (value > threshold) & (seeds == ignore_index)
    out = seeds.copy()
    for c in np.flatnonzero(candidates):
        original = seeds == c
        if not original.any():
            continue
        region, _ = ndimage.label(original | (accept & (best == c)), structure=np.ones((3, 3), bool))
        keep = np.isin(region, np.unique(region[original]))
        out[keep & accept & (best == c)] = c
    return out
