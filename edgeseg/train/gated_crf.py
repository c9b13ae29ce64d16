"""The gated CRF loss (Obukhov, Georgoulis, Dai, Van Gool, "Gated CRF Loss for Weakly Supervised Semantic Image
Segmentation", arXiv 1906.04651, 2019): a pairwise term that asks pixels alike in position and colour to agree,
which spreads sparse labels (clicks, scribbles) along image edges.

On a grid of ``stride``-pooled cells, for a cell u and a neighbour v ≠ u in its (2r+1)² window:

    K(u, v) = exp(-½ ‖(xy_u - xy_v) / σ_xy‖² - ½ ‖(rgb_u - rgb_v) / σ_rgb‖²)
    L = (1 / D) Σ_u Σ_v m(v) · g(u) · K(u, v) · (1 - ŷ(u) · ŷ(v))

with ŷ the class probabilities average-pooled to the grid, xy the cell centres in *input pixels* (so σ_xy = 24
is the paper's 6 cells at stride 4, at any stride), rgb the ImageNet-normalised image pooled the same way (σ_rgb
= 0.1 is about 5.8 of 255 levels), and m the validity of a cell (1 on the image, 0 where the crop padded; a cell
counts as valid only when all its pixels are). The gate ``src`` (the paper's code) sets g = 1: padded cells send
nothing, but as the pair term pulls on both of its ends they still receive. ``both`` sets g = m too, so
padding neither sends nor receives. D is the number of valid cells. Out-of-image neighbours add nothing.

The first sum Σ K is a constant the loss keeps so that it stays ≥ 0; only the gradient means anything, and a
constant one-hot prediction scores exactly 0 (the trivial minimiser: keep the weight small and warm up).
Training-only: nothing here reaches an exported graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.crf.window import window

GATES = ("both", "src")


class GatedCRFLoss(nn.Module):
    """The gated CRF loss with one RGBXY Gaussian kernel (Potts compatibility).

    ``forward(logits, images, valid=None)``: ``logits`` (N, C, H, W) at the input resolution, ``images`` the
    network input (N, ≥3, H, W, ImageNet-normalised; channels past 3, such as depth, are not used), ``valid``
    (N, H, W) 1 on the image and 0 on padding (all ones when omitted)."""

    def __init__(self, radius: int = 5, stride: int = 4, sigma_xy: float = 24.0, sigma_rgb: float = 0.1,
                 gate: str = "both") -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if radius < 1 or stride < 1 or sigma_xy <= 0 or sigma_rgb <= 0:
            raise ValueError("radius and stride must be at least 1, the sigmas above 0")
        self.radius, self.stride, self.sigma_xy, self.sigma_rgb, self.gate = radius, stride, sigma_xy, sigma_rgb, gate

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.stride) if self.stride > 1 else x

    def kernel(self, images: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(N, k², h, w): the gated kernel K̃(u, v) of every grid cell u (last two axes) and window offset v (no
        gradient: the features are inputs)."""
        k, s = 2 * self.radius + 1, self.stride
        with torch.no_grad():
            rgb = self._pool(images[:, :3].float())
            n, _, h, w = rgb.shape
            ys = (torch.arange(h, dtype=torch.float32, device=rgb.device) * s + (s - 1) / 2).view(1, 1, h, 1)
            xs = (torch.arange(w, dtype=torch.float32, device=rgb.device) * s + (s - 1) / 2).view(1, 1, 1, w)
            features = torch.cat([ys.expand(n, 1, h, w) / self.sigma_xy, xs.expand(n, 1, h, w) / self.sigma_xy,
                                  rgb / self.sigma_rgb], dim=1)
            diff = window(features, k) - features.unsqueeze(2)
            kernel = torch.exp(-0.5 * (diff * diff).sum(dim=1))
            kernel[:, (k * k) // 2] = 0.0  # no pair of a cell with itself
            # the window of the validity is 0 off the image, so out-of-image neighbours drop out too
            kernel = kernel * window(valid, k)[:, 0]
            if self.gate == "both":
                kernel = kernel * valid
        return kernel

    def forward(self, logits: torch.Tensor, images: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is None:
            valid = torch.ones_like(logits[:, 0])
        with torch.autocast(logits.device.type, enabled=False):
            prob = self._pool(F.softmax(logits.float(), dim=1))
            cells = (self._pool(valid[:, None].float()) >= 1.0).float()  # valid only when every pixel is
            kernel = self.kernel(images, cells)
            k = 2 * self.radius + 1
            agreement = (window(prob, k) * prob.unsqueeze(2)).sum(dim=1)  # ŷ(u) · ŷ(v), (N, k², h, w)
            return (kernel * (1.0 - agreement)).sum() / cells.sum().clamp(min=1.0)
