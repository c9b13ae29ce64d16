"""FickleNet (Lee, Kim, Lee, Lee, Yoon, "FickleNet: Weakly and Semi-supervised Semantic Image Segmentation using
Stochastic Inference", CVPR 2019, arXiv 1902.10421): a k×k classifier over the feature map whose hidden units are
dropped at random *per sliding-window position*, and many stochastic Grad-CAM maps per image combined.

Map expansion: ``x_exp[c, y·k+i, x·k+j] = x[c, y+i−⌊k/2⌋, x+j−⌊k/2⌋]`` (zero outside), so a k×k convolution with
stride k on ``x_exp`` equals a k×k stride-1 convolution on ``x`` exactly, while every window position owns its own
k×k block and so its own dropout mask. The paper keeps the centre of every window ("We do not drop the center of
the kernel of each sliding window position"): the mask is 1 at every block centre. Kept non-centre units are scaled
by 1/(1−p) (inverted dropout) in training and in stochastic inference alike, so Grad-CAM magnitudes do not shift.

The expanded map is k² times the feature map; :func:`check_expansion` refuses, before allocating, one larger than a
limit, naming the size it would take and the largest input that fits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError

DEFAULT_MAX_MB = 512.0


def expand(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C, h, w) → (N, C, k·h, k·w): block (y, x) holds the k×k neighbourhood of (y, x)."""
    n, c, h, w = x.shape
    cols = F.unfold(x, k, padding=k // 2).view(n, c, k, k, h, w)
    return cols.permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * k, w * k)


def expanded_mb(shape: tuple[int, ...], k: int) -> float:
    """Megabytes of the float32 expanded map of a (N, C, h, w) feature map."""
    n, c, h, w = shape
    return n * c * k * k * h * w * 4 / 2**20


def check_expansion(shape: tuple[int, ...], k: int, max_mb: float,
                    input_size: tuple[int, int] | None = None) -> None:
    """Refuse (:class:`EdgesegError`) an expanded map over ``max_mb``, naming its size and the largest input (of
    the same aspect ratio) that fits."""
    need = expanded_mb(shape, k)
    if need <= max_mb:
        return
    n, c, h, w = shape
    factor = math.sqrt(max_mb / need)
    if input_size:
        fits = f"an input up to about {int(input_size[0] * factor)}x{int(input_size[1] * factor)}"
    else:
        fits = f"a feature map up to about {int(h * factor)}x{int(w * factor)}"
    raise EdgesegError(f"FickleNet: expanding a {n}x{c}x{h}x{w} feature map with a {k}x{k} window would take "
                       f"{need:.0f} MB, over the limit of {max_mb:g} MB (--max-expand-mb); {fits} fits, or use a "
                       f"smaller --window or --width")


def window_mask(shape: tuple[int, ...], k: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dropout mask for an expanded map of ``shape``: kept non-centre units are 1/(1−p), dropped ones 0, and every
    block centre is 1 (never dropped)."""
    keep = (torch.rand(shape, generator=generator) >= p).float() / (1.0 - p)
    keep[..., k // 2::k, k // 2::k] = 1.0
    return keep


class FickleClassifier(nn.Module):
    """Backbone → 1×1 reduction to ``width`` channels (ReLU) = ``x`` → expanded map with per-window dropout →
    k×k stride-k classifier → global average pooling → scores (N, C)."""

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int, width: int = 128, k: int = 3,
                 p: float = 0.9, max_mb: float = DEFAULT_MAX_MB) -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise EdgesegError(f"FickleNet window must be an odd number ≥ 1, got {k}")
        if not 0 <= p < 1:
            raise EdgesegError(f"FickleNet dropout rate must be in [0, 1), got {p}")
        self.backbone, self.k, self.p, self.max_mb = backbone, k, p, max_mb
        self.num_classes, self.dilations = num_classes, (1,)
        self.reduce = nn.Conv2d(in_channels, width, 1)
        self.classifier = nn.Conv2d(width, num_classes, k, stride=k)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: the reduced backbone features the stochastic head and Grad-CAM work on."""
        out = self.backbone(x)
        return F.relu(self.reduce(out[-1] if isinstance(out, (list, tuple)) else out))

    def head(self, f: torch.Tensor, generator: torch.Generator | None = None, p: float | None = None,
             input_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Scores (N, C) of features ``f`` with a fresh dropout mask drawn from ``generator`` (rate ``p``, the
        model's by default; 0 gives the plain k×k convolution)."""
        p = self.p if p is None else p
        check_expansion(tuple(f.shape), self.k, self.max_mb, input_size)
        e = expand(f, self.k)
        if p > 0:
            e = e * window_mask(tuple(e.shape), self.k, p, generator).to(e.device)
        return self.classifier(e).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.head(self.features(x), input_size=tuple(x.shape[-2:]))]

    def loss(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """The multi-label soft-margin loss of one stochastic pass."""
        return F.multilabel_soft_margin_loss(self(x)[0], tags.float())


def build_fickle(num_classes: int, backbone: str = "resnet18", output_stride: int = 8, width: int = 128, k: int = 3,
                 p: float = 0.9, max_mb: float = DEFAULT_MAX_MB) -> FickleClassifier:
    """A :class:`FickleClassifier` on an edgeseg ResNet (random initialisation)."""
    from edgeseg.weak.cam import build_classifier

    trunk = build_classifier(num_classes, (1,), backbone, output_stride, 1).backbone
    return FickleClassifier(trunk, trunk.channels[-1], num_classes, width, k, p, max_mb)


def _generator(seed) -> torch.Generator:
    state = np.random.SeedSequence(seed if isinstance(seed, int) else list(seed)).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def stochastic_cams(model: FickleClassifier, x: torch.Tensor, tags: np.ndarray, n: int, seed=0,
                    aggregate: str = "union", max_mb: float | None = None) -> torch.Tensor:
    """(1, C, H, W) maps of one image ``x`` (1, 3, H, W): ``n`` stochastic passes, each a Grad-CAM per tagged class
    (``ReLU(Σ_k α_k x_k)``, ``α_k`` the spatial mean of ∂s_c/∂x_k, divided by its maximum), combined by ``union``
    (the element-wise maximum: a pixel is in the union of the thresholded maps) or ``mean``. BatchNorm stays in
    eval mode; the dropout is drawn from ``seed``, so the same seed gives the same maps. Untagged classes are 0."""
    if aggregate not in ("union", "mean"):
        raise EdgesegError(f"FickleNet aggregation must be union or mean, got {aggregate!r}")
    model.eval()
    if max_mb is not None:
        model.max_mb = max_mb
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        f = model.features(x)
    check_expansion(tuple(f.shape), model.k, model.max_mb, size)
    f = f.detach().requires_grad_(True)
    generator = _generator(seed)
    classes = [int(c) for c in np.flatnonzero(np.asarray(tags, bool))]
    combined = torch.zeros(1, model.num_classes, *f.shape[-2:])
    for _ in range(n):
        scores = model.head(f, generator, input_size=size)
        for c in classes:
            grad, = torch.autograd.grad(scores[0, c], f, retain_graph=True)
            cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * f).sum(dim=1))[0].detach()
            cam = cam / (cam.max() + 1e-5)
            combined[0, c] = torch.maximum(combined[0, c], cam) if aggregate == "union" else combined[0, c] + cam / n
    return F.interpolate(combined, size=size, mode="bilinear", align_corners=False)
