"""FastFCN: a non-dilated ResNet with the Joint Pyramid Upsampling module and an FCN, PSP or ASPP head."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ASPP, ConvBNAct, PyramidPooling, SegHead, SeparableConvBNAct, resize_to
from edgeseg.models.registry import register_model

PAPER = "Wu et al., FastFCN: Rethinking Dilated Convolution in the Backbone for Semantic Segmentation, arXiv 2019"
HEADS = ("fcn", "psp", "aspp")


class JointPyramidUpsampling(nn.Module):
    """JPU (paper §3.3, Fig. 4): 3×3 conv-BN-ReLU to ``width`` on the stride 8/16/32 features, upsample to
    stride 8 and concatenate, four parallel separable convs with dilation 1/2/4/8, concatenated (4·width).

    ``width=512`` gives the module 19.7M parameters (the paper's figure).
    """

    def __init__(self, in_channels: tuple[int, int, int], width: int = 512,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBNAct(c, width, 3) for c in in_channels)
        self.dilated = nn.ModuleList(SeparableConvBNAct(len(in_channels) * width, width, 3, dilation=d)
                                     for d in dilations)
        self.out_channels = len(dilations) * width

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        size = features[0].shape[-2:]
        feats = [resize_to(conv(f), size, align_corners=True) for conv, f in zip(self.convs, features)]
        x = torch.cat(feats, dim=1)
        return torch.cat([branch(x) for branch in self.dilated], dim=1)


class FastFCN(SegmentationModel):
    """FastFCN (Wu et al. 2019, arXiv:1903.11816; Fig. 2 and §3.3).

    ResNet-101 without dilation (output stride 32, cheaper than the dilated OS-8 trunk it replaces); JPU on
    layer2..4 gives stride-8 features; the head is the FCN head (3×3 conv to 512, dropout 0.1, 1×1), the PSP
    module or ASPP (``head=``). Auxiliary FCN head on layer3 (training only, weight 0.2 as the authors' code).
    Paper: EncNet+JPU ResNet-101 Pascal Context 53.1 mIoU; the JPU module alone is 19.7M parameters.
    """

    aux_weight = 0.2

    def __init__(self, num_classes: int, depth: int = 101, head: str = "fcn", width: int = 512) -> None:
        super().__init__(num_classes)
        if head not in HEADS:
            raise ValueError(f"fastfcn head must be one of {HEADS}, got {head!r}")
        self.backbone = ResNet(depth, output_stride=32)
        c2, c3, c4 = self.backbone.channels[1:]
        self.jpu = JointPyramidUpsampling((c2, c3, c4), width)
        c_in = self.jpu.out_channels
        if head == "fcn":
            self.head: nn.Module = SegHead(c_in, c_in // 4, num_classes)
        elif head == "psp":
            ppm = PyramidPooling(c_in)
            self.head = nn.Sequential(ppm, SegHead(ppm.out_channels, c_in // 4, num_classes))
        else:
            aspp = ASPP(c_in, (12, 24, 36), 256)
            self.head = nn.Sequential(aspp, SegHead(aspp.out_channels, 256, num_classes))
        self.aux_heads["layer3"] = SegHead(c3, c3 // 4, num_classes)

    def forward_logits(self, x: torch.Tensor):
        _, c2, c3, c4 = self.backbone(x)
        logits = self.head(self.jpu(c2, c3, c4))
        return self.to_input_size(logits, x, align_corners=True), [c3]


@register_model(paper=PAPER, input_size=(512, 1024), family="fastfcn")
def fastfcn(*, num_classes: int, depth: int = 101, head: str = "fcn", **kwargs) -> FastFCN:
    """FastFCN (JPU) with ResNet-101 and an FCN head; ``head="psp"`` or ``"aspp"`` for the others."""
    return FastFCN(num_classes, depth=depth, head=head, **kwargs)
