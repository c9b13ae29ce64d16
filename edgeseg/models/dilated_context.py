"""Yu & Koltun's dilated-convolution front-end with the basic or large context module."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.backbones.vgg import VGG16
from edgeseg.models.base import SegmentationModel
from edgeseg.models.registry import register_model

PAPER = "Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions, ICLR 2016"
LARGE_WIDTHS = (2, 2, 4, 8, 16, 32, 32)  # × C, paper Table 1
CITYSCAPES_LAYERS = 10  # the released Cityscapes model ("Dilation10"): basic module, dilations up to 64


def context_dilations(layers: int) -> tuple[int, ...]:
    """Dilations of the 3×3 layers of a ``layers``-layer context module (the last layer, a 1×1, excluded):
    ``1, 1, 2, 4, …, 2**(layers - 4), 1``. Table 1's 8 layers: 1, 1, 2, 4, 8, 16, 1; the Cityscapes model's 10
    adds 32 and 64 before the last 3×3."""
    if layers < 4:
        raise ValueError(f"a context module has at least 4 layers, got {layers}")
    return (1, 1, *(2 ** i for i in range(1, layers - 3)), 1)


def _identity_init(conv: nn.Conv2d, base: int, noise: float = 1e-3) -> None:
    """The paper's identity initialisation (Eq. 4; Eq. 5 when widths differ): each output copies the inputs
    of its own share of the ``base`` channels, scaled by ``base / c_out``, plus small noise."""
    c_out, c_in, kh, kw = conv.weight.shape
    same_share = (torch.arange(c_out)[:, None] * base // c_out) == (torch.arange(c_in)[None, :] * base // c_in)
    with torch.no_grad():
        conv.weight.normal_(0.0, noise if c_out != c_in else 0.0)
        center = conv.weight[:, :, kh // 2, kw // 2]
        center[same_share] = base / c_out
        nn.init.zeros_(conv.bias)


class ContextModule(nn.Module):
    """Paper Table 1 (``layers=8``): seven 3×3 convs with dilations 1, 1, 2, 4, 8, 16, 1 (ReLU after each), then a
    1×1 conv; ``C`` channels in and out. Basic: ``C`` channels throughout; large: 2C, 2C, 4C, 8C, 16C, 32C, 32C
    (Table 1 defines it for 8 layers only). ``layers=10``: the basic module of the released Cityscapes model,
    dilations 1, 1, 2, 4, 8, 16, 32, 64, 1 and the 1×1 (:func:`context_dilations`)."""

    def __init__(self, channels: int, large: bool = False, layers: int = 8) -> None:
        super().__init__()
        dilations = context_dilations(layers)
        if large and len(dilations) != len(LARGE_WIDTHS):
            raise ValueError(f"the large context module has {len(LARGE_WIDTHS) + 1} layers (Table 1), got {layers}")
        widths = [w * channels for w in LARGE_WIDTHS] if large else [channels] * len(dilations)
        modules: list[nn.Module] = []
        c_in = channels
        for width, dilation in zip(widths, dilations):
            conv = nn.Conv2d(c_in, width, 3, padding=dilation, dilation=dilation)
            _identity_init(conv, channels)
            modules += [conv, nn.ReLU(inplace=True)]
            c_in = width
        final = nn.Conv2d(c_in, channels, 1)
        _identity_init(final, channels)
        modules.append(final)
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DilatedContextNet(SegmentationModel):
    """Front-end + context module (Yu & Koltun, ICLR 2016, arXiv:1511.07122; §3 Table 1 and §4).

    Front-end: VGG16 with pool4 and pool5 removed, conv5 dilated 2, ``fc6`` a 7×7 conv dilated 4 (4096),
    ``fc7`` 1×1 4096, dropout 0.5, ``final`` 1×1 class scores at 1/8. The context module works on the ``C``
    class score maps (``C`` = number of classes, as in the paper's text) with identity initialisation, then
    bilinear upsampling ×8.

    ``context="basic"`` (default) with ``context_layers=10`` is the released Cityscapes model (the authors'
    ``dilation10_cityscapes`` definition in fyu/dilation: ``C`` = 19 channels in every context layer, dilations
    up to 64); it carries the paper's Cityscapes test result, 67.1 mIoU ("Dilation10"). ``context_layers=8`` is
    Table 1's basic module. ``context="large"`` is Table 1's large module (8 layers, widths up to 32C), which
    the paper evaluates on VOC 2012, not Cityscapes; ``"none"`` the front-end alone.
    Departures: "same" padding instead of the paper's unpadded convs on a reflection-padded input; bilinear
    upsampling instead of the released model's fixed bilinear deconvolution (kernel 16, stride 8).
    """

    def __init__(self, num_classes: int, context: str = "basic", context_layers: int | None = None,
                 fc_channels: int = 4096, dropout: float = 0.5) -> None:
        super().__init__(num_classes)
        if context not in ("basic", "large", "none"):
            raise ValueError(f"context must be 'basic', 'large' or 'none', got {context!r}")
        if context_layers is None:
            context_layers = CITYSCAPES_LAYERS if context == "basic" else len(LARGE_WIDTHS) + 1
        self.backbone = VGG16("dilated")
        self.fc6 = nn.Conv2d(512, fc_channels, 7, padding=12, dilation=4)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(dropout)
        self.final = nn.Conv2d(fc_channels, num_classes, 1)
        self.context = (ContextModule(num_classes, large=context == "large", layers=context_layers)
                        if context != "none" else nn.Identity())

    def forward_logits(self, x: torch.Tensor):
        h = self.backbone(x)[-1]
        h = self.drop(self.relu(self.fc6(h)))
        h = self.drop(self.relu(self.fc7(h)))
        return self.to_input_size(self.context(self.final(h)), x), []


@register_model(paper=PAPER, input_size=(512, 1024), family="dilated_context", size_divisor=8,
                reference_params=134.37e6,
                reference_source="released Dilation10 Cityscapes model, fyu/dilation deploy prototxt: its "
                                 "convolutions sum to 134,368,179 (the fixed upsampling deconvolution not counted)")
def dilated_context(*, num_classes: int, context: str = "basic", **kwargs) -> DilatedContextNet:
    """Front-end with the released Cityscapes model's 10-layer basic context module (``context="large"`` for
    Table 1's large module, ``context_layers=8`` for Table 1's basic one, ``"none"`` for the front-end alone)."""
    return DilatedContextNet(num_classes, context=context, **kwargs)
