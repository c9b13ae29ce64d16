"""LEDNet: split-shuffle non-bottleneck encoder and attention pyramid network decoder."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct, channel_shuffle, global_avg_pool, resize_to
from edgeseg.models.registry import register_model

PAPER = ("Wang et al., LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic "
         "Segmentation, ICIP 2019")
BN_EPS = 1e-3


class Downsampler(nn.Module):
    """ENet-style downsampling: a stride-2 3×3 conv (``out - in`` channels) concatenated with a max-pool.

    The pool uses ``ceil_mode`` so both halves have the conv's size for any input, with no computed
    ``F.pad`` (whose shape subgraph TensorRT rejects).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1, bias=True)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class FactorizedBranch(nn.Module):
    """Two factorized 3×3 convs (3×1 + 1×3, the second pair dilated), BN after each pair (Fig. 2)."""

    def __init__(self, channels: int, dilation: int, vertical_first: bool) -> None:
        super().__init__()
        k1, k2 = ((3, 1), (1, 3)) if vertical_first else ((1, 3), (3, 1))

        def conv(k, d):
            pad = ((k[0] - 1) // 2 * d, (k[1] - 1) // 2 * d)
            dil = (d if k[0] > 1 else 1, d if k[1] > 1 else 1)
            return nn.Conv2d(channels, channels, k, 1, pad, dil, bias=True)

        self.conv1a, self.conv1b = conv(k1, 1), conv(k2, 1)
        self.bn1 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.conv2a, self.conv2b = conv(k1, dilation), conv(k2, dilation)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1b(self.relu(self.conv1a(x)))))
        return self.bn2(self.conv2b(self.relu(self.conv2a(x))))


class SSnbt(nn.Module):
    """Split-shuffle non-bottleneck block: split channels in two, factorized convs per half (mirrored
    kernel order), concat, residual add, ReLU, channel shuffle."""

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        half = channels // 2
        self.left = FactorizedBranch(half, dilation, vertical_first=True)
        self.right = FactorizedBranch(half, dilation, vertical_first=False)
        self.dropout = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        out = self.dropout(torch.cat([self.left(left), self.right(right)], dim=1))
        return channel_shuffle(self.relu(out + x), 2)


class AttentionPyramid(nn.Module):
    """APN decoder (Fig. 3): a 3-level pyramid (7×7, 5×5, 3×3 stride-2 convs) builds a one-channel
    attention map that multiplies the 1×1-projected features; a global-pool branch is added."""

    def __init__(self, in_channels: int, num_classes: int, bias: bool = False, bn_eps: float = 1e-5) -> None:
        super().__init__()
        eps, b = bn_eps, bias
        self.glob = ConvBNAct(in_channels, num_classes, 1, bn_eps=eps, bias=b)
        self.mid = ConvBNAct(in_channels, num_classes, 1, bn_eps=eps, bias=b)
        self.down1 = ConvBNAct(in_channels, 1, 7, 2, bn_eps=eps, bias=b)
        self.down2 = ConvBNAct(1, 1, 5, 2, bn_eps=eps, bias=b)
        self.down3 = nn.Sequential(ConvBNAct(1, 1, 3, 2, bn_eps=eps, bias=b), ConvBNAct(1, 1, 3, bn_eps=eps, bias=b))
        self.conv2 = ConvBNAct(1, 1, 5, bn_eps=eps, bias=b)
        self.conv1 = ConvBNAct(1, 1, 7, bn_eps=eps, bias=b)

    def forward(self, x):
        size = x.shape[-2:]
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        att = self.conv2(d2) + resize_to(d3, d2.shape[-2:], align_corners=True)
        att = self.conv1(d1) + resize_to(att, d1.shape[-2:], align_corners=True)
        att = resize_to(att, size, align_corners=True)
        return self.mid(x) * att + self.glob(global_avg_pool(x))


class LEDNet(SegmentationModel):
    """LEDNet (Wang et al., ICIP 2019, arXiv:1905.02423).

    Encoder: downsampler to 32 ch, 3 SS-nbt; downsampler to 64, 2 SS-nbt; downsampler to 128, 8 SS-nbt with
    dilations 1, 2, 5, 9, 2, 5, 9, 17 (1/8 resolution). Decoder: attention pyramid network, then ×8 bilinear.

    Matches the author's code (xiaoyufenfei/LEDNet) layer for layer, except that by default the APN's convs
    have no bias (followed by BN, a bias is redundant) and its BNs the usual eps 1e-5: 0.923M parameters at 19
    classes, 44 fewer than the author's code (paper: 0.94M; the 0.917M of the port in
    xiaoyufenfei/Efficient-Segmentation-Networks is another network). ``apn_bias=True, apn_bn_eps=1e-3`` is the
    author's APN exactly, what its released weights need (``edgeseg import lednet``). Departures: max-pool
    ``ceil_mode`` replaces the reference's computed padding (identical on even sizes, export-safe
    everywhere); the global-pool branch is broadcast instead of upsampled (same values); the final
    upsampling goes to the input's size (the author's code resizes to a fixed 512×1024). The paper trains
    with no auxiliary head; neither do we.
    """

    def __init__(self, num_classes: int, dropout: float = 0.03, deep_dropout: float = 0.3, apn_bias: bool = False,
                 apn_bn_eps: float = 1e-5) -> None:
        super().__init__(num_classes)
        layers: list[nn.Module] = [Downsampler(3, 32)]
        layers += [SSnbt(32, 1, dropout) for _ in range(3)]
        layers += [Downsampler(32, 64)]
        layers += [SSnbt(64, 1, dropout) for _ in range(2)]
        layers += [Downsampler(64, 128)]
        layers += [SSnbt(128, d, deep_dropout) for d in (1, 2, 5, 9, 2, 5, 9, 17)]
        self.encoder = nn.Sequential(*layers)
        self.decoder = AttentionPyramid(128, num_classes, apn_bias, apn_bn_eps)

    def forward_logits(self, x):
        logits = self.decoder(self.encoder(x))
        return self.to_input_size(logits, x, align_corners=True), []


@register_model(paper=PAPER, size_divisor=8, input_size=(512, 1024), family="lednet", realtime=True,
                reference_params=0.923e6,
                reference_source="author's code xiaoyufenfei/LEDNet (0.923M; we leave out the APN's 44 conv biases)")
def lednet(*, num_classes: int, **kwargs) -> LEDNet:
    """LEDNet (paper: Cityscapes test 70.6 mIoU, 71 FPS on a GTX 1080 Ti at 1024×512)."""
    return LEDNet(num_classes, **kwargs)
