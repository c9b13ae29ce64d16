"""PSPNet: dilated ResNet, pyramid pooling module, auxiliary loss on layer3."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct, PyramidPooling, SegHead
from edgeseg.models.registry import register_model

PAPER = "Zhao et al., Pyramid Scene Parsing Network, CVPR 2017"


class PSPNet(SegmentationModel):
    """PSPNet (Zhao et al., CVPR 2017, arXiv:1612.01105; Fig. 3, §3.3 and §4 "aux loss 0.4").

    Dilated ResNet at output stride 8; pyramid pooling to 1/2/3/6 bins (each 1×1 conv to 512, upsampled and
    concatenated with the 2048-channel features); 3×3 conv-BN-ReLU 512, dropout 0.1, 1×1 classifier;
    bilinear upsampling ×8. The auxiliary head on layer3 (3×3 conv 256, dropout, 1×1; loss weight 0.4) is
    training-only. Pooling kernels are fixed from the feature size at export, so the ONNX graph has plain
    AveragePool nodes for the deploy size (the spatial size is static); they equal adaptive pooling whenever a bin
    count divides the feature size. Paper: Cityscapes test 80.2 mIoU (ResNet-101, coarse data added).
    Departures: torchvision's 7×7 stem (so ImageNet weights load) instead of the paper's three 3×3 convs.

    Dilation as the authors' code (the released Caffe models and hszhao/semseg): every block of layer3 is
    dilated 2 and every block of layer4 4, the first included (``dilate_first_block=True``, default).
    ``dilate_first_block=False`` gives torchvision's ``replace_stride_with_dilation`` instead (first block at
    the previous stage's dilation, 1 and 2), which the earlier edgeseg PSPNet had.
    """

    aux_weight = 0.4

    def __init__(self, num_classes: int, depth: int = 101, bins: tuple[int, ...] = (1, 2, 3, 6),
                 channels: int = 512, dropout: float = 0.1, dilate_first_block: bool = True) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, output_stride=8, dilate_first_block=dilate_first_block)
        c3, c4 = self.backbone.channels[2:]
        self.ppm = PyramidPooling(c4, bins)
        self.bottleneck = ConvBNAct(self.ppm.out_channels, channels, 3)
        self.drop = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.aux_heads["layer3"] = SegHead(c3, 256, num_classes, dropout)

    def forward_logits(self, x: torch.Tensor):
        _, _, c3, c4 = self.backbone(x)
        logits = self.cls(self.drop(self.bottleneck(self.ppm(c4))))
        return self.to_input_size(logits, x, align_corners=True), [c3]


@register_model(paper=PAPER, input_size=(512, 1024), family="pspnet", size_divisor=8)
def pspnet(*, num_classes: int, depth: int = 101, **kwargs) -> PSPNet:
    """PSPNet with a dilated ResNet-101 (``depth=50`` for the lighter one)."""
    return PSPNet(num_classes, depth=depth, **kwargs)
