"""BiSeNet V2: detail branch, semantic branch, bilateral guided aggregation, booster heads."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct, SegHead, global_avg_pool, resize_to
from edgeseg.models.registry import register_model

PAPER = ("Yu et al., BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic "
         "Segmentation, IJCV 2021")

UPSAMPLING = ("bilinear", "nearest")


def _bn_conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
    """Conv + BN without activation (the linear projections of GE layers and the BGA)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, groups=groups, act=None)


class DetailBranch(nn.Module):
    """Wide and shallow: stages of 3×3 conv-BN-ReLU at 1/2, 1/4, 1/8 with 64, 64, 128 channels (Table 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.s1 = nn.Sequential(ConvBNAct(3, 64, 3, 2), ConvBNAct(64, 64, 3))
        self.s2 = nn.Sequential(ConvBNAct(64, 64, 3, 2), ConvBNAct(64, 64, 3), ConvBNAct(64, 64, 3))
        self.s3 = nn.Sequential(ConvBNAct(64, 128, 3, 2), ConvBNAct(128, 128, 3), ConvBNAct(128, 128, 3))

    def forward(self, x):
        return self.s3(self.s2(self.s1(x)))


class StemBlock(nn.Module):
    """Stem (Fig. 4a): stride-2 conv, then a conv branch and a max-pool branch concatenated and fused: 1/4."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = ConvBNAct(3, out_channels, 3, 2)
        self.left = nn.Sequential(ConvBNAct(out_channels, out_channels // 2, 1),
                                  ConvBNAct(out_channels // 2, out_channels, 3, 2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = ConvBNAct(out_channels * 2, out_channels, 3)

    def forward(self, x):
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class GatherExpand(nn.Module):
    """Gather-and-expand layer (Fig. 5b/c): 3×3 conv, depthwise expansion ×6, 1×1 projection, residual.

    With ``stride=2`` (Fig. 5c) two depthwise convs are used and the shortcut is a depthwise-separable
    stride-2 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 6) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.conv = ConvBNAct(in_channels, in_channels, 3)
        if stride == 1:
            self.dwconv = ConvBNAct(in_channels, mid, 3, groups=in_channels)
            self.shortcut = None
        else:
            self.dwconv = nn.Sequential(_bn_conv(in_channels, mid, 3, 2, groups=in_channels),
                                        ConvBNAct(mid, mid, 3, groups=mid))
            self.shortcut = nn.Sequential(_bn_conv(in_channels, in_channels, 3, 2, groups=in_channels),
                                          _bn_conv(in_channels, out_channels, 1))
        self.project = _bn_conv(mid, out_channels, 1)
        nn.init.zeros_(self.project.bn.weight)  # residual branch starts as identity (as in the ref impl)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.project(self.dwconv(self.conv(x))) + shortcut)


class ContextEmbedding(nn.Module):
    """Context embedding block (Fig. 5a): global average pool → BN → 1×1 conv, added back, then 3×3 conv."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.gap_conv = ConvBNAct(channels, channels, 1)
        self.last = ConvBNAct(channels, channels, 3)

    def forward(self, x):
        return self.last(x + self.gap_conv(self.bn(global_avg_pool(x))))


class SemanticBranch(nn.Module):
    """Narrow and deep: stem (1/4), GE stages at 1/8, 1/16, 1/32, context embedding (Table 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = StemBlock(16)
        self.s3 = nn.Sequential(GatherExpand(16, 32, 2), GatherExpand(32, 32))
        self.s4 = nn.Sequential(GatherExpand(32, 64, 2), GatherExpand(64, 64))
        self.s5 = nn.Sequential(GatherExpand(64, 128, 2), *[GatherExpand(128, 128) for _ in range(3)])
        self.ce = ContextEmbedding(128)

    def forward(self, x):
        s2 = self.stem(x)
        s3 = self.s3(s2)
        s4 = self.s4(s3)
        s5 = self.s5(s4)
        return self.ce(s5), [s2, s3, s4, s5]


class GuidedAggregation(nn.Module):
    """Bilateral guided aggregation (Fig. 6): each branch gates the other at its own resolution."""

    def __init__(self, channels: int = 128, upsampling: str = "bilinear") -> None:
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"aggregation_upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        self.upsampling = upsampling
        c = channels
        self.detail_keep = nn.Sequential(_bn_conv(c, c, 3, groups=c), nn.Conv2d(c, c, 1, bias=False))
        self.detail_down = nn.Sequential(_bn_conv(c, c, 3, 2), nn.AvgPool2d(3, 2, 1))
        self.semantic_up = _bn_conv(c, c, 3)
        self.semantic_keep = nn.Sequential(_bn_conv(c, c, 3, groups=c), nn.Conv2d(c, c, 1, bias=False))
        self.fuse = ConvBNAct(c, c, 3)

    def forward(self, detail, semantic):
        size = detail.shape[-2:]
        mode = self.upsampling
        detail_out = self.detail_keep(detail) * torch.sigmoid(resize_to(self.semantic_up(semantic), size, mode))
        semantic_gate = torch.sigmoid(self.semantic_keep(semantic))
        semantic_out = self.detail_down(detail)
        semantic_out = resize_to(semantic_out, semantic_gate.shape[-2:]) * semantic_gate
        return self.fuse(detail_out + resize_to(semantic_out, size, mode))


class BiSeNetV2(SegmentationModel):
    """BiSeNet V2 (Yu et al., IJCV 2021, arXiv:2004.02147).

    Detail branch (1/8, 128 ch), semantic branch (stem, gather-and-expand layers, context embedding), bilateral
    guided aggregation, a segmentation head with a 1024-channel 3×3 conv, and four booster heads (training
    only) on the stem and the semantic stages at 1/8, 1/16, 1/32.

    Matches: 3.36M parameters at 19 classes without the boosters (reference implementation CoinCheung/BiSeNet,
    eval mode). Departures: resizes go to the target tensor's size rather than a fixed ×4 / ×8 factor, so
    inputs that are not multiples of 32 work (identical for multiples of 32); the final ×8 upsample is
    bilinear with ``align_corners=False`` as in the reference implementation.

    ``aggregation_upsampling``: how the aggregation layer brings the semantic side (1/32) up to the detail side
    (1/8), both ×4 resizes: ``"bilinear"`` (default; the paper draws an upsampling without naming it) or
    ``"nearest"``, what CoinCheung/BiSeNet's code does (its released Cityscapes / COCO / ADE20K weights need it:
    ``edgeseg import coincheung-bisenetv2``).
    """

    def __init__(self, num_classes: int, head_channels: int = 1024, booster_channels: int = 128,
                 aggregation_upsampling: str = "bilinear") -> None:
        super().__init__(num_classes)
        self.detail = DetailBranch()
        self.semantic = SemanticBranch()
        self.aggregation = GuidedAggregation(128, aggregation_upsampling)
        self.head = SegHead(128, head_channels, num_classes)
        for name, channels in (("stem", 16), ("s3", 32), ("s4", 64), ("s5", 128)):
            self.aux_heads[name] = SegHead(channels, booster_channels, num_classes)

    def forward_logits(self, x):
        semantic, boosters = self.semantic(x)
        fused = self.aggregation(self.detail(x), semantic)
        return self.to_input_size(self.head(fused), x), boosters


@register_model(paper=PAPER, input_size=(512, 1024), family="bisenet", realtime=True,
                reference_params=3.36e6, reference_source="ref impl CoinCheung/BiSeNet, eval, 19 classes")
def bisenetv2(*, num_classes: int, **kwargs) -> BiSeNetV2:
    """BiSeNet V2 (paper: Cityscapes val 73.4 / test 72.6 mIoU, 156 FPS on a GTX 1080 Ti at 512×1024)."""
    return BiSeNetV2(num_classes, **kwargs)
