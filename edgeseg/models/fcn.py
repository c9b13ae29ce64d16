"""FCN-32s / 16s / 8s: VGG16 made fully convolutional, with skip fusion at 1/16 and 1/8."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.vgg import VGG16
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers.upsample import LearnedUpsample
from edgeseg.models.registry import register_model

PAPER = "Long, Shelhamer & Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"


class FCN(SegmentationModel):
    """FCN (Long et al., CVPR 2015, arXiv:1411.4038; Fig. 3 and §4.2).

    VGG16 with its classifier convolutionalised (``fc6`` 7×7 → 4096, ``fc7`` 1×1 → 4096, dropout 0.5 each),
    ``score_fr`` 1×1 class scores at 1/32, then (``stride=16``/``8``) a learned 2× deconvolution fused by
    summation with 1×1 scores of pool4 (and again with pool3), and a fixed bilinear upsampling to the input.
    Matches the paper's ~134M parameters for VGG16 FCNs (we count 134.3M for FCN-32s at 19 classes).
    Departures: "same" padding instead of conv1's padding of 100 and the crops it needs; the final
    upsampling is a bilinear resize (the paper fixes that layer to bilinear anyway); the intermediate 2×
    deconvolutions are bilinear at init and learned, as in the paper.
    """

    def __init__(self, num_classes: int, stride: int = 32, fc_channels: int = 4096, dropout: float = 0.5) -> None:
        super().__init__(num_classes)
        if stride not in (32, 16, 8):
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
        self.stride = stride
        self.backbone = VGG16("plain")
        self.fc6 = nn.Conv2d(512, fc_channels, 7, padding=3)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(dropout)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512, num_classes, 1)
            self.upscore2 = LearnedUpsample(num_classes, 2)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256, num_classes, 1)
            self.upscore_pool4 = LearnedUpsample(num_classes, 2)

    def forward_logits(self, x: torch.Tensor):
        pool3, pool4, pool5 = self.backbone(x)
        h = self.drop(self.relu(self.fc6(pool5)))
        h = self.drop(self.relu(self.fc7(h)))
        score = self.score_fr(h)
        if self.stride <= 16:
            score = self.upscore2(score, pool4.shape[-2:]) + self.score_pool4(pool4)
        if self.stride == 8:
            score = self.upscore_pool4(score, pool3.shape[-2:]) + self.score_pool3(pool3)
        return self.to_input_size(score, x), []


@register_model(paper=PAPER, input_size=(512, 1024), family="fcn", reference_params=134e6,
                reference_source="paper §4.2, VGG16 FCNs (~134M)")
def fcn32s(*, num_classes: int, **kwargs) -> FCN:
    """FCN-32s: class scores at 1/32 upsampled in one step (paper: VOC11 val 59.4 mIoU)."""
    return FCN(num_classes, stride=32, **kwargs)


@register_model(paper=PAPER, input_size=(512, 1024), family="fcn", reference_params=134e6,
                reference_source="paper §4.2, VGG16 FCNs (~134M)")
def fcn16s(*, num_classes: int, **kwargs) -> FCN:
    """FCN-16s: fused with pool4 scores (paper: VOC11 val 62.4 mIoU)."""
    return FCN(num_classes, stride=16, **kwargs)


@register_model(paper=PAPER, input_size=(512, 1024), family="fcn", reference_params=134e6,
                reference_source="paper §4.2, VGG16 FCNs (~134M)")
def fcn8s(*, num_classes: int, **kwargs) -> FCN:
    """FCN-8s: fused with pool4 and pool3 scores (paper: VOC11 val 62.7, VOC12 test 62.2 mIoU)."""
    return FCN(num_classes, stride=8, **kwargs)
