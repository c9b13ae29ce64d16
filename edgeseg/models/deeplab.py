"""DeepLab v1 (atrous VGG16, LargeFOV) and v2 (ResNet-101 with ASPP): class scores at 1/8, bilinear upsampling,
the fully connected CRF as a separate post-processing stage (``edgeseg export --crf``, ``edgeseg run --crf``)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.backbones.vgg import VGG16
from edgeseg.models.base import SegmentationModel
from edgeseg.models.registry import register_model

PAPER_V1 = ("Chen et al., Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs, "
            "ICLR 2015")
PAPER_V2 = ("Chen et al., DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, "
            "and Fully Connected CRFs, TPAMI 2018")


class DeepLabV1(SegmentationModel):
    """DeepLab-LargeFOV (Chen et al., ICLR 2015, arXiv:1412.7062; §3.1 and Table 2 "DeepLab-LargeFOV").

    Atrous VGG16 (3×3 pools, pool4/pool5 at stride 1, conv5 dilated 2; output stride 8), ``fc6`` a 3×3 conv
    with dilation 12 and 1024 channels (the paper's subsampled fc6), ``fc7`` 1×1 1024, dropout 0.5 after each,
    ``fc8`` class scores, bilinear upsampling ×8 (Caffe's ``Interp``: ``align_corners=True``). Matches the
    paper's 20.5M parameters (Table 2; we count 20.5M at 19 classes). The CRF is not in this module: the
    paper applies it as post-processing, which edgeseg's CRF stage does (``--crf dense`` for the paper's
    fully connected CRF, ``--crf conv`` for ConvCRF).

    ``pool5a=True`` adds the 3×3 stride-1 average pool (padding 1, padded zeros counted) that the official
    DeepLab-LargeFOV prototxt has after pool5 and the paper does not mention; its released weights (and ports
    of them, ``edgeseg import deeplab-largefov``) need it: without it the same weights give logits 41% off.
    The default (``False``) keeps the network as the paper describes it.
    """

    def __init__(self, num_classes: int, fc_channels: int = 1024, fc6_dilation: int = 12,
                 dropout: float = 0.5, pool5a: bool = False) -> None:
        super().__init__(num_classes)
        self.backbone = VGG16("deeplab")
        self.pool5a = nn.AvgPool2d(3, 1, 1) if pool5a else nn.Identity()
        self.fc6 = nn.Conv2d(512, fc_channels, 3, padding=fc6_dilation, dilation=fc6_dilation)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(dropout)
        self.fc8 = nn.Conv2d(fc_channels, num_classes, 1)

    def forward_logits(self, x: torch.Tensor):
        h = self.pool5a(self.backbone(x)[-1])
        h = self.drop(self.relu(self.fc6(h)))
        h = self.drop(self.relu(self.fc7(h)))
        return self.to_input_size(self.fc8(h), x, align_corners=True), []


class ClassScoreASPP(nn.Module):
    """DeepLab v2's ASPP-L (Fig. 4b): parallel 3×3 atrous convs straight to class scores, fused by summation."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class DeepLabV2(SegmentationModel):
    """DeepLab v2 (Chen et al., TPAMI 2018, arXiv:1606.00915; §3.2 and Fig. 4b, ResNet-101 "ASPP-L").

    ResNet-101 at output stride 8 (layer3 / layer4 dilated 2 / 4), ASPP with rates 6/12/18/24 producing class
    scores fused by sum, bilinear upsampling ×8 (``align_corners=True``). The paper's multi-scale input
    training (MSC) and COCO pre-training are training recipes, not part of the network; the CRF runs as
    edgeseg's post-processing stage. Paper: VOC12 test 79.7 mIoU with CRF; Cityscapes test 70.4.

    Dilation as the authors' released Caffe models: every block of the dilated stages is dilated, the first
    included (res4a at 2, res5a at 4; ``dilate_first_block=True``, default). ``dilate_first_block=False``
    gives torchvision's ``replace_stride_with_dilation`` instead (first block at the previous stage's
    dilation), which the earlier edgeseg DeepLab v2 had; the weights have the same shapes either way.
    """

    def __init__(self, num_classes: int, depth: int = 101, output_stride: int = 8,
                 rates: tuple[int, ...] = (6, 12, 18, 24), dilate_first_block: bool = True) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, output_stride, dilate_first_block=dilate_first_block)
        self.aspp = ClassScoreASPP(self.backbone.channels[-1], num_classes, rates)

    def forward_logits(self, x: torch.Tensor):
        c4 = self.backbone(x)[-1]
        return self.to_input_size(self.aspp(c4), x, align_corners=True), []


@register_model(paper=PAPER_V1, input_size=(512, 1024), family="deeplab", size_divisor=8,
                reference_params=20.5e6, reference_source="paper Table 2, DeepLab-LargeFOV (20.5M)")
def deeplabv1(*, num_classes: int, **kwargs) -> DeepLabV1:
    """DeepLab v1 LargeFOV (paper: VOC12 test 71.6 mIoU with the dense CRF)."""
    return DeepLabV1(num_classes, **kwargs)


@register_model(paper=PAPER_V2, input_size=(512, 1024), family="deeplab", size_divisor=8)
def deeplabv2(*, num_classes: int, depth: int = 101, **kwargs) -> DeepLabV2:
    """DeepLab v2 with ResNet-101 and ASPP-L; ``depth=50`` for the lighter trunk."""
    return DeepLabV2(num_classes, depth=depth, **kwargs)
