"""DANet: position and channel attention on a dilated ResNet."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct
from edgeseg.models.layers.attention import ChannelAttention, PositionAttention, position_attention_bytes
from edgeseg.models.registry import register_model

PAPER = "Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019"
OUTPUT_STRIDE = 8


class DANet(SegmentationModel):
    """DANet (Fu et al., CVPR 2019, arXiv:1809.02983; Fig. 2 and §3.2-3.4).

    Dilated ResNet-101 at output stride 8; two branches from the 2048-channel features, each a 3×3 conv-BN-ReLU
    to 512, then the position (PAM) or channel (CAM) attention module and another 3×3 conv-BN-ReLU; their sum
    → dropout 0.1 → 1×1 classifier; bilinear upsampling ×8. As in the authors' code, the PAM-only and CAM-only
    classifiers are trained alongside (aux heads, dropped at deploy). Paper: Cityscapes test 81.5 mIoU.
    The PAM's attention matrix is ``(H/8 · W/8)²`` floats per image: 4.3 GB at 1024×2048, so export refuses
    sizes whose matrix exceeds the memory limit (``edgeseg export --max-attention-mb``).

    Options for the authors' released weights (junfu1115/DANet, ``edgeseg import danet``):
    ``multi_grid=(1, 2, 4)`` dilates layer4's three blocks 4, 8, 16 (the default: 2, 4, 4, the first block at
    the previous stage's rate); ``align_corners=True`` makes the final ×8 upsampling the authors' (default
    ``False``).
    """

    def __init__(self, num_classes: int, depth: int = 101, channels: int = 512, dropout: float = 0.1,
                 multi_grid: tuple[int, int, int] | None = None, align_corners: bool = False) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, OUTPUT_STRIDE, multi_grid=tuple(multi_grid) if multi_grid else None)
        self.align_corners = align_corners
        c4 = self.backbone.channels[-1]
        self.pam_in, self.cam_in = ConvBNAct(c4, channels, 3), ConvBNAct(c4, channels, 3)
        self.pam, self.cam = PositionAttention(channels), ChannelAttention()
        self.pam_out, self.cam_out = ConvBNAct(channels, channels, 3), ConvBNAct(channels, channels, 3)
        self.cls = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))
        for branch in ("pam", "cam"):
            self.aux_heads[branch] = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))

    def forward_logits(self, x: torch.Tensor):
        c4 = self.backbone(x)[-1]
        sa = self.pam_out(self.pam(self.pam_in(c4)))
        sc = self.cam_out(self.cam(self.cam_in(c4)))
        return self.to_input_size(self.cls(sa + sc), x, align_corners=self.align_corners), [sa, sc]


def _attention_bytes(size: tuple[int, int], batch: int = 1) -> int:
    return position_attention_bytes(size, OUTPUT_STRIDE, batch)


@register_model(paper=PAPER, input_size=(512, 1024), family="danet", size_divisor=OUTPUT_STRIDE,
                attention_bytes=_attention_bytes)
def danet(*, num_classes: int, depth: int = 101, **kwargs) -> DANet:
    """DANet with a dilated ResNet-101 (``depth=50`` for the lighter one)."""
    return DANet(num_classes, depth=depth, **kwargs)
