"""ACNet: RGB-D segmentation with three ResNet-50 branches and attention complementary modules."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.data.depth import DEPTH_MEAN_M, DEPTH_STD_M
from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ChannelGate, ConvBNAct, resize_to
from edgeseg.models.registry import register_model

PAPER = ("Hu et al., ACNet: Attention Based Network to Exploit Complementary Features for RGBD Semantic "
         "Segmentation, ICIP 2019")


class AttentionComplementary(nn.Module):
    """ACM (paper Fig. 2): a channel gate per modality (pool → 1×1 conv → sigmoid), outputs summed."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rgb_gate = ChannelGate(channels, norm=False)
        self.depth_gate = ChannelGate(channels, norm=False)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return rgb * self.rgb_gate(rgb) + depth * self.depth_gate(depth)


class TransposeBlock(nn.Module):
    """The decoder's residual block (RedNet's / ACNet's ``TransBasicBlock``): 3×3 conv-BN-ReLU, then a 3×3
    conv (or, when upsampling, a 3×3 stride-2 transposed conv) and BN, plus a shortcut (2×2 transposed conv
    + BN when upsampling, 1×1 conv + BN when the width changes), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, in_channels, 3)
        if upsample:
            self.conv2: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1,
                                                       bias=False)
            self.shortcut: nn.Module | None = nn.Sequential(
                nn.ConvTranspose2d(in_channels, out_channels, 2, 2, bias=False), nn.BatchNorm2d(out_channels))
        else:
            self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.shortcut = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                           nn.BatchNorm2d(out_channels)) if in_channels != out_channels else None)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.bn2(self.conv2(self.conv1(x))) + identity)


def _decoder_stage(in_channels: int, out_channels: int, blocks: int, upsample: bool = True) -> nn.Sequential:
    layers = [TransposeBlock(in_channels, in_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers, TransposeBlock(in_channels, out_channels, upsample))


class ACNet(SegmentationModel):
    """ACNet (Hu et al., ICIP 2019, arXiv:1905.10089; Fig. 1-2).

    Three ResNet-50 branches: RGB, depth (a 1-channel ``conv1``) and a fusion branch (stages only). After the
    stem and after each stage the attention complementary module weighs the RGB and depth features per
    channel and adds them into the fusion branch. Decoder as the authors' (RedNet's): 1×1 "agant" convs on
    the fused features, four upsampling stages of 6/4/3/3 residual transposed-conv blocks (256/128/64/64)
    with the skips added, three more blocks and a 2×2 transposed conv to class scores at full resolution;
    deep supervision on the four stage outputs (training only). Matches the paper's 116.6M parameters
    (we count 116.6M at 19 classes). Paper: NYUDv2 48.3 mIoU.

    Input: 4 channels, normalised RGB then normalised depth (``in_channels = 4``); the deploy graph takes
    ``image`` (uint8 RGB) and ``depth`` (float32 metres) separately and builds this tensor, depth normalised as
    ``(d - 5 m) / 5 m`` (:data:`edgeseg.data.depth.DEPTH_MEAN_M`). ``depth_normalization=(mean_m, std_m)``:
    weights trained on depth normalised with other statistics (the authors' NYUDv2 release: 2.842 m,
    0.993 m, ``edgeseg import acnet``); the model first maps edgeseg's normalised depth to those, an exact
    per-pixel affine map before the depth branch.
    """

    in_channels = 4

    def __init__(self, num_classes: int, depth: int = 50,
                 depth_normalization: tuple[float, float] | None = None) -> None:
        super().__init__(num_classes)
        self.depth_affine = None
        if depth_normalization is not None:
            mean_m, std_m = (float(v) for v in depth_normalization)
            if not std_m > 0:
                raise ValueError(f"depth_normalization needs a positive std, got {std_m}")
            # edgeseg's (d - M) / S  →  the weights' (d - mean) / std:  x · S / std + (M - mean) / std
            self.depth_affine = (DEPTH_STD_M / std_m, (DEPTH_MEAN_M - mean_m) / std_m)
        self.rgb = ResNet(depth)
        self.depth = ResNet(depth, in_channels=1)
        self.fusion = ResNet(depth, stem=False)
        widths = (64, *self.rgb.channels)
        self.acm = nn.ModuleList(AttentionComplementary(c) for c in widths)
        self.agant = nn.ModuleList(ConvBNAct(c, w, 1) for c, w in zip(widths, (64, 64, 128, 256, 512)))
        self.up = nn.ModuleList([_decoder_stage(512, 256, 6), _decoder_stage(256, 128, 4),
                                 _decoder_stage(128, 64, 3), _decoder_stage(64, 64, 3)])
        self.final = _decoder_stage(64, 64, 3, upsample=False)
        self.final_deconv = nn.ConvTranspose2d(64, num_classes, 2, 2)
        for name, width in (("out5", 256), ("out4", 128), ("out3", 64), ("out2", 64)):
            self.aux_heads[name] = nn.Conv2d(width, num_classes, 1)

    def forward_logits(self, x: torch.Tensor):
        d = x[:, 3:]
        if self.depth_affine is not None:
            d = d * self.depth_affine[0] + self.depth_affine[1]
        rgb, depth = self.rgb.stem(x[:, :3]), self.depth.stem(d)
        fused = [self.acm[0](rgb, depth)]
        rgb, depth, m = self.rgb.maxpool(rgb), self.depth.maxpool(depth), self.fusion.maxpool(fused[0])
        for acm, stage_rgb, stage_depth, stage_m in zip(self.acm[1:], self.rgb.stages, self.depth.stages,
                                                        self.fusion.stages):
            rgb, depth = stage_rgb(rgb), stage_depth(depth)
            m = stage_m(m) + acm(rgb, depth)
            fused.append(m)
        y = self.agant[4](fused[4])
        deep = []
        for up, agant, skip in zip(self.up, self.agant[3::-1], fused[3::-1]):
            y = up(y)
            deep.append(y)
            y = resize_to(y, skip.shape[-2:]) + agant(skip)
        logits = self.to_input_size(self.final_deconv(self.final(y)), x)
        return logits, deep


@register_model(paper=PAPER, input_size=(480, 640), family="acnet", reference_params=116.6e6,
                reference_source="paper, three ResNet-50 branches (116.6M)")
def acnet(*, num_classes: int, depth: int = 50, **kwargs) -> ACNet:
    """ACNet for RGB-D input (NYUDv2's 480×640 by default)."""
    return ACNet(num_classes, depth=depth, **kwargs)
