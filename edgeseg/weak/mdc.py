"""Multi-dilated CAM (Wei, Xiao, Shi, Jie, Feng, Huang, "Revisiting Dilated Convolution: A Simple Approach for
Weakly- and Semi-Supervised Semantic Segmentation", CVPR 2018, arXiv 1805.04574).

Blocks with dilations 1, 3, 6 and 9 share the backbone (:class:`edgeseg.weak.cam.CAMClassifier`); their maps are
fused as ``H = H_0 + (1/n_d) Σ_{i=1..n_d} H_i``: the d = 1 map keeps the precise discriminative core, and the
*average* of the n_d dilated maps spreads it over the object while damping the false positives each large
dilation produces on its own (summing them with weight 1 would not).
"""

from __future__ import annotations

import torch

MDC_DILATIONS = (1, 3, 6, 9)


def fuse(maps: torch.Tensor) -> torch.Tensor:
    """(..., B, C, H, W) block maps, block 0 the d = 1 one → (..., C, H, W): ``H_0 + mean(H_1..H_{B-1})``
    (``H_0`` alone when there is one block)."""
    if maps.shape[-4] == 1:
        return maps[..., 0, :, :, :]
    return maps[..., 0, :, :, :] + maps[..., 1:, :, :, :].mean(dim=-4)
