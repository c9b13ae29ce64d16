"""BiSeNet V1: spatial path + context path, attention refinement, feature fusion."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.backbones.xception39 import Xception39
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ChannelGate, ConvBNAct, SegHead, global_avg_pool, resize_to
from edgeseg.models.registry import register_model

VARIANTS = ("torchseg", "coincheung")
PAPER = "Yu et al., BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation, ECCV 2018"


class SpatialPath(nn.Module):
    """Three stride-2 conv-BN-ReLU layers (7×7, 3×3, 3×3) and a 1×1 projection: 1/8 resolution, wide."""

    def __init__(self, out_channels: int = 128, channels: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            ConvBNAct(3, channels, 7, stride=2), ConvBNAct(channels, channels, 3, stride=2),
            ConvBNAct(channels, channels, 3, stride=2), ConvBNAct(channels, out_channels, 1))

    def forward(self, x):
        return self.layers(x)


class AttentionRefinement(nn.Module):
    """ARM (paper Fig. 2b, as in the authors' TorchSeg code): 3×3 conv-BN-ReLU, then a global channel gate."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 3)
        self.gate = ChannelGate(out_channels)

    def forward(self, x):
        x = self.conv(x)
        return x * self.gate(x)


class FeatureFusion(nn.Module):
    """FFM (paper Fig. 2c): concat → 1×1 conv-BN-ReLU → channel gate; output ``f + f·gate``.

    The gate is the paper's two 1×1 convs with a ReLU between (``gate="mlp"``), or one 1×1 conv + BN
    (``gate="conv_bn"``, CoinCheung/BiSeNet's V1)."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1, gate: str = "mlp") -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 1)
        hidden = None if gate == "conv_bn" else out_channels // reduction
        self.gate = ChannelGate(out_channels, hidden=hidden)

    def forward(self, spatial, context):
        f = self.conv(torch.cat([spatial, context], dim=1))
        return f + f * self.gate(f)


class BiSeNetV1(SegmentationModel):
    """BiSeNet (Yu et al., ECCV 2018, arXiv:1808.00897).

    Spatial path (1/8, 128 channels) and context path (Xception39 or ResNet-18) with attention refinement
    at 1/32 and 1/16 and a global-average-pool context vector, fused by the FFM; two auxiliary heads on the
    context path (training only, paper §3.3, weight 1 each).

    Widths follow the authors' code (TorchSeg): 128-channel context path, 256-channel fusion, 64-channel
    main head. Matches: the paper's 2.9 GFLOPs at 640×360 for Xception39 (we count 3.07 G
    multiply-adds, +6%). The paper's "5.8M" parameters are not reproducible from the described network: the
    authors' code, whose FLOPs match, has 1.55M. The figure is close to its float32 weight size, 6.20 MB =
    5.91 MiB (within 2% read as MiB), so the column most likely reads as megabytes, as DFANet's does (see
    :class:`edgeseg.models.dfanet.DFANet`).
    Departures: upsampling is bilinear with ``align_corners=True`` as in the authors' code; the ARM has a
    3×3 conv before its gate (authors' code) so its output width matches the context features; the global
    context vector is broadcast rather than upsampled (same values).

    Options for published weights (``edgeseg import``):

    * ``variant="coincheung"``: CoinCheung/BiSeNet's V1 (Cityscapes 75.4 mIoU with ResNet-18): the FFM gate is
      one 1×1 conv + BN instead of two convs, the context path upsamples ×2 by nearest neighbour, the final
      ×8 upsampling is bilinear with ``align_corners=False``; it also takes ``head_channels=256`` and
      ``aux_channels=64``. The default ``"torchseg"`` is the authors' code described above.
    * ``xception_depthwise_bn=False``: Xception39's separable convs without a BN between the depthwise and the
      pointwise conv, as the authors' TorchSeg backbone (and its released BiSeNet-X39 weights).
    """

    def __init__(self, num_classes: int, backbone: str = "xception39", context_channels: int = 128,
                 spatial_channels: int = 128, fusion_channels: int = 256, head_channels: int = 64,
                 aux_channels: int = 128, variant: str = "torchseg", xception_depthwise_bn: bool = True) -> None:
        super().__init__(num_classes)
        if variant not in VARIANTS:
            raise ValueError(f"bisenetv1 variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        if backbone == "xception39":
            self.backbone = Xception39(depthwise_bn=xception_depthwise_bn)
            _, c16, c32 = self.backbone.channels
        elif backbone == "resnet18":
            self.backbone = ResNet(18)
            _, _, c16, c32 = self.backbone.channels
        else:
            raise ValueError(f"bisenetv1 backbone must be 'xception39' or 'resnet18', got {backbone!r}")
        self.backbone_name = backbone
        self.spatial_path = SpatialPath(spatial_channels)
        self.global_context = ConvBNAct(c32, context_channels, 1)
        self.arm32 = AttentionRefinement(c32, context_channels)
        self.arm16 = AttentionRefinement(c16, context_channels)
        self.refine32 = ConvBNAct(context_channels, context_channels, 3)
        self.refine16 = ConvBNAct(context_channels, context_channels, 3)
        self.ffm = FeatureFusion(spatial_channels + context_channels, fusion_channels,
                                 gate="conv_bn" if variant == "coincheung" else "mlp")
        self.head = SegHead(fusion_channels, head_channels, num_classes)
        self.aux_heads["context16"] = SegHead(context_channels, aux_channels, num_classes)
        self.aux_heads["context8"] = SegHead(context_channels, aux_channels, num_classes)

    def forward_logits(self, x):
        features = self.backbone(x)
        c16, c32 = features[-2], features[-1]
        spatial = self.spatial_path(x)
        context = self.arm32(c32) + self.global_context(global_avg_pool(c32))
        mode, corners = ("nearest", None) if self.variant == "coincheung" else ("bilinear", True)
        context16 = self.refine32(resize_to(context, c16.shape[-2:], mode, corners))
        context = self.arm16(c16) + context16
        context8 = self.refine16(resize_to(context, spatial.shape[-2:], mode, corners))
        logits = self.to_input_size(self.head(self.ffm(spatial, context8)), x,
                                    align_corners=self.variant != "coincheung")
        return logits, [context16, context8]


@register_model(paper=PAPER, input_size=(768, 1536), family="bisenet", realtime=True,
                reference_flops=(2.9e9, (360, 640)), reference_source="paper, Xception39 at 640×360")
def bisenetv1(*, num_classes: int, backbone: str = "xception39", **kwargs) -> BiSeNetV1:
    """BiSeNet V1; ``backbone="resnet18"`` for the ResNet-18 variant (paper: val 74.8 mIoU)."""
    return BiSeNetV1(num_classes, backbone=backbone, **kwargs)
