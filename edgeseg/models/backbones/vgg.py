"""VGG16 (Simonyan & Zisserman, ICLR 2015) as the trunk of FCN, DeepLab v1 and the dilated-context network.

``features.<i>`` indices match ``torchvision.models.vgg16`` exactly (convs at 0, 2, 5, 7, 10, 12, 14, 17, 19,
21, 24, 26, 28), so its ImageNet weights load with :func:`edgeseg.models.backbones.load_backbone_weights`. A
pool a variant removes becomes ``nn.Identity`` at the same index, so the indices never shift. The fully
connected ``classifier.0`` / ``classifier.3`` become the models' ``fc6`` / ``fc7`` convolutions through
:func:`fully_convolutional_state`.

Variants (``variant=``):

* ``"plain"``: torchvision's 2×2 stride-2 pools, output stride 32 (FCN, Long et al. CVPR 2015).
* ``"deeplab"``: 3×3 pools with padding 1; pool4 and pool5 at stride 1 and ``conv5`` dilated by 2, output stride 8
  (DeepLab v1, Chen et al. ICLR 2015, §3.1 "atrous" VGG16).
* ``"dilated"``: pool4 and pool5 removed and ``conv5`` dilated by 2, output stride 8 (Yu & Koltun, ICLR 2016,
  front-end §4).
"""

from __future__ import annotations

import torch
from torch import nn

_CONVS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VARIANTS = ("plain", "deeplab", "dilated")


def _pool(variant: str, index: int) -> nn.Module:
    late = index >= 3  # pool4 and pool5
    if variant == "plain":
        return nn.MaxPool2d(2, 2)
    if variant == "deeplab":
        return nn.MaxPool2d(3, 1 if late else 2, 1)
    return nn.Identity() if late else nn.MaxPool2d(2, 2)


class VGG16(nn.Module):
    """Thirteen 3×3 conv-ReLU layers in five blocks; returns the outputs of pool3, pool4 and pool5."""

    def __init__(self, variant: str = "plain", in_channels: int = 3) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"VGG16 variant must be one of {VARIANTS}, got {variant!r}")
        layers: list[nn.Module] = []
        self._taps = []
        channels = in_channels
        for block, widths in enumerate(_CONVS):
            dilation = 2 if block == 4 and variant != "plain" else 1
            for width in widths:
                layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
                channels = width
            layers.append(_pool(variant, block))
            self._taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.variant = variant
        self.output_stride = 32 if variant == "plain" else 8
        self.channels = (256, 512, 512)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = set(self._taps[2:])
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out


def fully_convolutional_state(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """torchvision's VGG16 ``classifier.0`` / ``classifier.3`` (Linear) as ``fc6`` (7×7 conv) / ``fc7`` (1×1).

    This is FCN's "convolutionalization" (Long et al. §3.1): the same weights, reshaped.
    """
    out = {}
    for src, dst, kernel in (("classifier.0", "fc6", 7), ("classifier.3", "fc7", 1)):
        weight = state.get(f"{src}.weight")
        if weight is None:
            continue
        out[f"{prefix}{dst}.weight"] = weight.reshape(weight.shape[0], -1, kernel, kernel)
        out[f"{prefix}{dst}.bias"] = state[f"{src}.bias"]
    return out
