"""DeepLab v3 (ASPP with image pooling) and v3+ (encoder-decoder; aligned Xception, ResNet or MobileNetV2)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.mobilenetv2 import MobileNetV2
from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.backbones.xception import AlignedXception
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ASPP, ConvBNAct, SeparableConvBNAct, resize_to
from edgeseg.models.registry import register_model

PAPER_V3 = "Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, arXiv:1706.05587, 2017"
PAPER_V3P = ("Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation, "
             "ECCV 2018")
BACKBONES = ("xception", "resnet101", "resnet50", "mobilenetv2")


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """(6, 12, 18) at output stride 16, doubled at 8 (DeepLab v3 §3.3)."""
    if output_stride not in (8, 16):
        raise ValueError(f"DeepLab output stride must be 8 or 16, got {output_stride}")
    return (6, 12, 18) if output_stride == 16 else (12, 24, 36)


class DeepLabV3(SegmentationModel):
    """DeepLab v3 (Chen et al. 2017, arXiv:1706.05587; §3.3, Fig. 5).

    ResNet-101 at output stride 16 (or 8) with multi-grid (1, 2, 4) in layer4; ASPP: 1×1, three 3×3 atrous
    convs (rates 6/12/18 at OS 16, doubled at OS 8) and image-level pooling, 256 channels each, concatenated
    → 1×1 conv-BN-ReLU; then, as torchvision's ``DeepLabHead``, a 3×3 conv-BN-ReLU 256 and the 1×1 classifier;
    bilinear upsampling to the input. Matches torchvision's ``deeplabv3_resnet101`` without aux: 58.6M
    parameters (torchvision's model card; we count 58.6M at 19 classes). Paper: VOC12 test 85.7, Cityscapes test 81.3.
    """

    def __init__(self, num_classes: int, depth: int = 101, output_stride: int = 16,
                 multi_grid: tuple[int, int, int] | None = (1, 2, 4), channels: int = 256) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, output_stride, multi_grid=multi_grid)
        self.aspp = ASPP(self.backbone.channels[-1], aspp_rates(output_stride), channels)
        self.head = ConvBNAct(channels, channels, 3)
        self.cls = nn.Conv2d(channels, num_classes, 1)

    def forward_logits(self, x: torch.Tensor):
        c4 = self.backbone(x)[-1]
        return self.to_input_size(self.cls(self.head(self.aspp(c4))), x), []


def _encoder(backbone: str, output_stride: int) -> tuple[nn.Module, int, int]:
    """``(backbone, low-level channels, high-level channels)``: its first feature (stride 4) is the decoder's
    low-level input, its last the encoder's output."""
    if backbone == "xception":
        net: nn.Module = AlignedXception(output_stride)
    elif backbone == "mobilenetv2":
        net = MobileNetV2(output_stride)
    elif backbone in ("resnet101", "resnet50"):
        net = ResNet(int(backbone[6:]), output_stride, multi_grid=(1, 2, 4))
    else:
        raise ValueError(f"deeplabv3plus backbone must be one of {BACKBONES}, got {backbone!r}")
    return net, net.channels[0], net.channels[-1]


class DeepLabV3Plus(SegmentationModel):
    """DeepLab v3+ (Chen et al., ECCV 2018, arXiv:1802.02611; Fig. 2 and §3.1 / §4).

    Encoder: backbone at output stride 16 + ASPP (atrous branches depthwise separable with Xception, §3.2).
    Decoder: low-level features (stride 4) → 1×1 conv to 48; the encoder output upsampled ×4 and concatenated;
    two 3×3 convs of 256 (separable with Xception); 1×1 classifier; bilinear upsampling ×4. Backbones: aligned
    Xception-65 (the paper's best: VOC12 test 89.0, Cityscapes test 82.1), ResNet-101, MobileNetV2.
    """

    def __init__(self, num_classes: int, backbone: str = "xception", output_stride: int = 16,
                 channels: int = 256, low_level_channels: int = 48) -> None:
        super().__init__(num_classes)
        self.backbone, c_low, c_high = _encoder(backbone, output_stride)
        separable = backbone == "xception"
        self.aspp = ASPP(c_high, aspp_rates(output_stride), channels, separable=separable, dropout=0.1)
        self.low_level = ConvBNAct(c_low, low_level_channels, 1)
        c_in = channels + low_level_channels
        if separable:
            self.decoder = nn.Sequential(SeparableConvBNAct(c_in, channels, depthwise_act=True),
                                         SeparableConvBNAct(channels, channels, depthwise_act=True))
        else:
            self.decoder = nn.Sequential(ConvBNAct(c_in, channels, 3), ConvBNAct(channels, channels, 3))
        self.cls = nn.Conv2d(channels, num_classes, 1)

    def forward_logits(self, x: torch.Tensor):
        features = self.backbone(x)
        low, high = self.low_level(features[0]), features[-1]
        y = torch.cat([resize_to(self.aspp(high), low.shape[-2:]), low], dim=1)
        return self.to_input_size(self.cls(self.decoder(y)), x), []


@register_model(paper=PAPER_V3, input_size=(512, 1024), family="deeplab", size_divisor=16,
                reference_params=58.6e6, reference_source="torchvision deeplabv3_resnet101 without aux (58.6M)")
def deeplabv3(*, num_classes: int, depth: int = 101, output_stride: int = 16, **kwargs) -> DeepLabV3:
    """DeepLab v3 with ResNet-101 at output stride 16 (``output_stride=8`` for the denser, slower variant)."""
    return DeepLabV3(num_classes, depth=depth, output_stride=output_stride, **kwargs)


@register_model(paper=PAPER_V3P, input_size=(512, 1024), family="deeplab", size_divisor=16)
def deeplabv3plus(*, num_classes: int, backbone: str = "xception", output_stride: int = 16,
                  **kwargs) -> DeepLabV3Plus:
    """DeepLab v3+; ``backbone`` one of ``xception`` (default), ``resnet101``, ``resnet50``, ``mobilenetv2``."""
    return DeepLabV3Plus(num_classes, backbone=backbone, output_stride=output_stride, **kwargs)
