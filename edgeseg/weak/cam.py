"""Class activation maps (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016) from a
classifier trained on image-level or crop-level tags, with one block per dilation rate so that multi-dilated CAM
(:mod:`edgeseg.weak.mdc`, Wei et al., CVPR 2018) shares the classifier.

Each block is ``g_i = ReLU(Conv3×3, dilation d_i (f))`` on the backbone's last feature map ``f``, and its scores are
``s_i = W_i · GAP(g_i) + b_i`` (a 1×1 classifier after global average pooling). Its CAM is ``W_i g_i`` per
position: the spatial mean of the CAM is ``s_i - b_i``. Maps are computed as irn does (jiwoon-ahn/irn,
``step/make_cam.py``): ReLU, summed over the scales and the flipped pass at the input size, divided by each class's
spatial maximum. The loss is the multi-label soft-margin loss summed over the blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError

BACKBONES = ("resnet18", "resnet34", "resnet50")


class CAMClassifier(nn.Module):
    """A multi-label classifier with one CAM block per dilation in ``dilations`` on ``backbone``, a module whose
    output is a feature map (N, ``in_channels``, h, w) or a list of them (the last is used)."""

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int, dilations: Sequence[int] = (1,),
                 width: int = 128) -> None:
        super().__init__()
        if not dilations or any(int(d) < 1 for d in dilations):
            raise EdgesegError(f"CAM dilations must be positive integers, got {tuple(dilations)}")
        self.backbone, self.dilations, self.num_classes = backbone, tuple(int(d) for d in dilations), num_classes
        self.blocks = nn.ModuleList(nn.Conv2d(in_channels, width, 3, padding=d, dilation=d) for d in self.dilations)
        self.classifiers = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in self.dilations)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map."""
        out = self.backbone(x)
        return out[-1] if isinstance(out, (list, tuple)) else out

    def block_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``g_i`` for every block."""
        f = self.features(x)
        return [F.relu(block(f)) for block in self.blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Scores (N, C) per block."""
        return [cls(g.mean(dim=(2, 3), keepdim=True)).flatten(1)
                for g, cls in zip(self.block_features(x), self.classifiers)]

    def raw_cams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-ReLU CAMs ``W_i g_i`` (N, C, h, w) per block, at the feature resolution (no bias)."""
        return [F.conv2d(g, cls.weight) for g, cls in zip(self.block_features(x), self.classifiers)]

    def loss(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Σ over blocks of the multi-label soft-margin loss against ``tags`` (N, C) in {0, 1}."""
        return sum(F.multilabel_soft_margin_loss(s, tags.float()) for s in self(x))

    @torch.no_grad()
    def cams(self, x: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = True) -> torch.Tensor:
        """(N, B, C, H, W) per-block CAMs at the input size: ReLU, summed over ``scales`` and the flipped pass,
        each class divided by its spatial maximum (values in [0, 1]; an all-zero map stays zero)."""
        size = x.shape[-2:]
        total = None
        for scale in scales:
            xs = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            passes = [(xs, False), (xs.flip(-1), True)] if flip else [(xs, False)]
            for inp, flipped in passes:
                maps = torch.stack([F.relu(m) for m in self.raw_cams(inp)], dim=1)
                if flipped:
                    maps = maps.flip(-1)
                n, b, c, h, w = maps.shape
                maps = F.interpolate(maps.view(n, b * c, h, w), size=size, mode="bilinear",
                                     align_corners=False).view(n, b, c, *size)
                total = maps if total is None else total + maps
        return normalise(total)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Divide every map (the last two dimensions) by its maximum (+1e-5): irn's normalisation."""
    peak = maps.flatten(-2).amax(dim=-1)[..., None, None]
    return maps / (peak + 1e-5)


def build_classifier(num_classes: int, dilations: Sequence[int] = (1,), backbone: str = "resnet18",
                     output_stride: int = 8, width: int = 128) -> CAMClassifier:
    """A :class:`CAMClassifier` on an edgeseg ResNet (random initialisation; ImageNet weights load into
    ``model.backbone`` with :func:`edgeseg.models.backbones.load_backbone_weights`)."""
    from edgeseg.models.backbones.resnet import ResNet

    if backbone not in BACKBONES:
        raise EdgesegError(f"unknown CAM backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    if output_stride not in (8, 16, 32):
        raise EdgesegError(f"output stride must be 8, 16 or 32, got {output_stride}")
    trunk = ResNet(int(backbone[len("resnet"):]), output_stride)
    return CAMClassifier(trunk, trunk.channels[-1], num_classes, dilations, width)
