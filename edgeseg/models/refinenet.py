"""RefineNet: a 4-cascaded multi-path refinement decoder over ResNet-101."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers.ops import resize_to
from edgeseg.models.registry import register_model

PAPER = ("Lin et al., RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic Segmentation, "
         "CVPR 2017")


def _conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


class ResidualConvUnit(nn.Module):
    """RCU (Fig. 2b): ReLU → 3×3 conv → ReLU → 3×3 conv, plus the input. No batch normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.conv2 = _conv3x3(channels, channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(self.relu(x))))


class ChainedResidualPooling(nn.Module):
    """CRP (Fig. 2d): ReLU, then a chain of {5×5 max-pool stride 1 → 3×3 conv}; each block's output is added.

    Fig. 2d draws two pool-conv blocks; the authors' released models have four (``chained_pool_num=4`` in their
    MatConvNet configuration), the default here."""

    def __init__(self, channels: int, blocks: int = 4) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.convs = nn.ModuleList(_conv3x3(channels, channels, bias=False) for _ in range(blocks))

    def forward(self, x):
        x = self.relu(x)
        path = x
        for conv in self.convs:
            path = conv(self.pool(path))
            x = x + path
        return x


class RefineNetBlock(nn.Module):
    """One RefineNet (Fig. 2a): per input two RCUs; multi-resolution fusion (3×3 conv to ``out_channels``,
    upsample to the largest input, sum) when there are several inputs; chained residual pooling; one RCU."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, crp_blocks: int = 4) -> None:
        super().__init__()
        self.adapt = nn.ModuleList(nn.Sequential(ResidualConvUnit(c), ResidualConvUnit(c)) for c in in_channels)
        self.fuse = (nn.ModuleList(_conv3x3(c, out_channels) for c in in_channels) if len(in_channels) > 1
                     else None)
        self.crp = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = ResidualConvUnit(out_channels)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        paths = [adapt(x) for adapt, x in zip(self.adapt, inputs)]
        if self.fuse is None:
            x = paths[0]
        else:
            size = max((p.shape[-2:] for p in paths), key=lambda s: int(s[0]) * int(s[1]))
            x = sum(resize_to(conv(p), size) for conv, p in zip(self.fuse, paths))
        return self.out(self.crp(x))


class RefineNet(SegmentationModel):
    """4-cascaded RefineNet (Lin et al., CVPR 2017, arXiv:1611.06612; Fig. 2 and Fig. 3c).

    ResNet-101 (output stride 32); each stage's output passes a 3×3 conv (dropout 0.5 on the two deepest, as
    the authors' code) to 512 channels for layer4 and 256 for the rest; RefineNet-4 takes layer4 alone,
    RefineNet-3..1 each take one ResNet stage and the previous RefineNet's output; two more RCUs, dropout and a
    classifier at 1/4, bilinear upsampling ×4. Paper: VOC12 test 83.4, Cityscapes test 73.6.

    As the authors' released models (their MatConvNet code and the PyTorch port of their VOC weights,
    DrSleep/refinenet-pytorch): chained residual pooling with four pool-conv blocks and a 3×3 classifier
    (defaults ``crp_blocks=4``, ``classifier_kernel=3``). We count 118.056M parameters at 19 classes, the port
    118.048M: its second RCU conv and its fusion convs have no bias (7,936 parameters).
    ``crp_blocks=2, classifier_kernel=1`` is the network as Fig. 2 draws it and as edgeseg built it before
    (109.8M, 8.3M fewer).
    """

    def __init__(self, num_classes: int, depth: int = 101, channels: int = 256, crp_blocks: int = 4,
                 classifier_kernel: int = 3, dropout: float = 0.5) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, output_stride=32)
        widths = (channels, channels, channels, 2 * channels)
        self.reduce = nn.ModuleList(_conv3x3(c, w, bias=False) for c, w in zip(self.backbone.channels, widths))
        self.drop = nn.Dropout(dropout)
        self.refine4 = RefineNetBlock((widths[3],), widths[3], crp_blocks)
        self.refine3 = RefineNetBlock((widths[2], widths[3]), channels, crp_blocks)
        self.refine2 = RefineNetBlock((widths[1], channels), channels, crp_blocks)
        self.refine1 = RefineNetBlock((widths[0], channels), channels, crp_blocks)
        self.head = nn.Sequential(ResidualConvUnit(channels), ResidualConvUnit(channels), nn.Dropout(0.1),
                                  nn.Conv2d(channels, num_classes, classifier_kernel,
                                            padding=classifier_kernel // 2))

    def forward_logits(self, x: torch.Tensor):
        features = self.backbone(x)
        l1, l2, l3, l4 = (reduce(f) for reduce, f in zip(self.reduce, features))
        y = self.refine4(self.drop(l4))
        y = self.refine3(self.drop(l3), y)
        y = self.refine2(l2, y)
        y = self.refine1(l1, y)
        return self.to_input_size(self.head(y), x), []


@register_model(paper=PAPER, input_size=(512, 1024), family="refinenet", reference_params=118.05e6,
                reference_source="authors' released RefineNet-101, PyTorch port DrSleep/refinenet-pytorch rf101 "
                                 "(118.05M at 19 classes)")
def refinenet(*, num_classes: int, depth: int = 101, **kwargs) -> RefineNet:
    """RefineNet with ResNet-101 (``depth=50`` for the lighter one)."""
    return RefineNet(num_classes, depth=depth, **kwargs)
