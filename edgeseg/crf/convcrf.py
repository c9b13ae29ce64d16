"""ConvCRF: mean-field inference of a fully connected CRF restricted to a k×k window on a blurred grid.

Teichmann & Cipolla, "Convolutional CRFs for Semantic Segmentation", BMVC 2019 (arXiv:1805.04777). The model is
the dense CRF's (Krähenbühl & Koltun, NIPS 2011): a unary from the network and two Gaussian pairwise kernels, an
appearance kernel on position and colour and a smoothness kernel on position, with a Potts (or learned)
compatibility. ConvCRF computes the messages only between cells of a ``blur``-times average-pooled grid that lie
within a ``filter_size`` window, which makes message passing plain convolution arithmetic.

Deployable by construction: the window is gathered by a grouped Conv with fixed one-hot k×k kernels (no
``unfold``, no Gather/Scatter), and everything else is AveragePool, Exp, Mul, ReduceSum, Softmax and a bilinear
Resize, all in TensorRT's support matrix. Kernels are normalised per cell (as pydensecrf's default symmetric
normalisation does), so the weights mean the same as the dense CRF's compatibilities. Feature differences are
taken in σ units and out-of-image neighbours are removed by a validity feature, so the graph also holds in fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.crf.params import CRFParams
from edgeseg.crf.window import shift_kernels, window

_VALID = 10.0  # a zero-padded neighbour differs by this in the validity feature: exp(-50) ≈ 0 even in fp16


class ConvCRF(nn.Module):
    """Refine ``logits`` (N, C, H, W) with the colour image (N, 3, H, W, RGB 0-255): returns refined logits
    (log-domain, before the last softmax). No learned parameters unless ``compatibility="learned"``."""

    def __init__(self, num_classes: int, params: CRFParams | None = None) -> None:
        super().__init__()
        self.params = p = (params or CRFParams()).validate()
        self.num_classes, k = num_classes, p.filter_size
        self.register_buffer("shift_features", shift_kernels(8, k), persistent=False)
        self.register_buffer("shift_classes", shift_kernels(num_classes, k), persistent=False)
        not_center = torch.ones(1, 1, k * k, 1, 1)
        not_center[0, 0, (k * k) // 2] = 0.0  # mean field sends no message from a cell to itself
        self.register_buffer("not_center", not_center, persistent=False)
        self.compat = None
        if p.compatibility == "learned":
            self.compat = nn.Conv2d(num_classes, num_classes, 1, bias=False)
            with torch.no_grad():
                self.compat.weight.copy_(torch.eye(num_classes).view(num_classes, num_classes, 1, 1))

    def _window(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(N, F, h, w) → (N, F, k², h, w) by the exportable grouped Conv (see :func:`edgeseg.crf.window.window`)."""
        return window(x, self.params.filter_size, weight)

    def _features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 8, h, w): smoothness x, y / σγ; appearance x, y / σα, r, g, b / σβ; validity."""
        p, b = self.params, self.params.blur
        rgb = F.avg_pool2d(image, b) if b > 1 else image
        n, _, h, w = rgb.shape
        ys = (torch.arange(h, dtype=torch.float32, device=rgb.device) * b + (b - 1) / 2).view(1, 1, h, 1)
        xs = (torch.arange(w, dtype=torch.float32, device=rgb.device) * b + (b - 1) / 2).view(1, 1, 1, w)
        ys, xs = ys.expand(n, 1, h, w), xs.expand(n, 1, h, w)
        grid = torch.cat([xs / p.gaussian_sigma_xy, ys / p.gaussian_sigma_xy, xs / p.bilateral_sigma_xy,
                          ys / p.bilateral_sigma_xy], dim=1).to(rgb.dtype)  # in σ units before any fp16 cast
        return torch.cat([grid, rgb / p.bilateral_sigma_rgb, torch.full_like(rgb[:, :1], _VALID)], dim=1)

    def kernel(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 1, k², h, w): the weighted sum of both normalised Gaussian kernels over each cell's window
        (slices, not Gather, pick the features)."""
        p = self.params
        feats = self._features(image)
        diff = self._window(feats, self.shift_features) - feats.unsqueeze(2)
        sq = diff * diff
        invalid = sq[:, 7:8]
        smooth = torch.exp(-0.5 * (sq[:, 0:2].sum(dim=1, keepdim=True) + invalid)) * self.not_center
        appear = torch.exp(-0.5 * (sq[:, 2:7].sum(dim=1, keepdim=True) + invalid)) * self.not_center
        smooth = smooth / (smooth.sum(dim=2, keepdim=True) + 1e-6)
        appear = appear / (appear.sum(dim=2, keepdim=True) + 1e-6)
        return p.gaussian_weight * smooth + p.bilateral_weight * appear

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        b = self.params.blur
        size = logits.shape[-2:]
        kernel = self.kernel(image.to(logits.dtype))
        unary = F.log_softmax(logits, dim=1)
        refined, q = logits, F.softmax(logits, dim=1)
        for _ in range(self.params.iterations):
            grid = F.avg_pool2d(q, b) if b > 1 else q
            message = (self._window(grid, self.shift_classes) * kernel).sum(dim=2)
            if self.compat is not None:
                message = self.compat(message)
            if b > 1:
                message = F.interpolate(message, size=size, mode="bilinear", align_corners=False)
            refined = unary + message
            q = F.softmax(refined, dim=1)
        return refined
