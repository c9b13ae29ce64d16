"""DUpsampling: a data-dependent decoder whose reconstruction matrix is learned from the labels."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.base import SegmentationModel
from edgeseg.models.layers import ConvBNAct, resize_to
from edgeseg.models.registry import register_model

log = logging.getLogger(__name__)
PAPER = ("Tian et al., Decoders Matter for Semantic Segmentation: Data-Dependent Decoding Enables Flexible "
         "Feature Aggregation, CVPR 2019")


class DUpsampling(nn.Module):
    """Data-dependent upsampling (paper §3.1, Eq. 1-3).

    Each ``r×r`` patch of one-hot labels is a vector ``z`` of ``C·r²``; the reconstruction matrix ``W``
    (``C·r² × N'``) and projection ``P = Wᵀ`` minimise ``Σ ||z − W P z||²`` over the training labels, which
    :meth:`fit` solves in closed form (PCA of the label patches, the paper's Eq. 3). ``W`` is then fixed: it is
    a buffer, not a trained parameter, and exports as a constant 1×1 convolution. The channel order of a
    patch follows the authors' code (width offset outermost, then height offset, then class), which is *not*
    ONNX DepthToSpace's order: the rearrangement is an explicit Reshape → Transpose → Reshape.
    """

    def __init__(self, in_channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        self.scale, self.num_classes = scale, num_classes
        dim = num_classes * scale * scale
        if in_channels > dim:
            raise ValueError(f"DUpsampling: {in_channels} compressed channels exceed C·r² = {dim}")
        basis, _ = torch.linalg.qr(torch.randn(dim, in_channels, generator=torch.Generator().manual_seed(0)))
        self.register_buffer("reconstruction", basis.contiguous())  # W: (C·r², N'), orthonormal columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, k = self.scale, self.num_classes
        _, _, h, w = x.shape
        y = F.conv2d(x, self.reconstruction[:, :, None, None].to(x.dtype))
        y = y.reshape(-1, r, r, k, h, w).permute(0, 3, 4, 2, 5, 1)
        return y.reshape(-1, k, h * r, w * r)

    def patches(self, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
        """``(N, H, W)`` labels (sides multiples of ``r``) → ``(N·h·w, C·r²)`` patch vectors ``z``."""
        r, k = self.scale, self.num_classes
        n, height, width = labels.shape
        valid = (labels != ignore_index) & (labels < k)
        onehot = F.one_hot(torch.where(valid, labels, 0).long(), k).permute(0, 3, 1, 2).float()
        onehot = onehot * valid[:, None].float()
        z = onehot.reshape(n, k, height // r, r, width // r, r).permute(0, 5, 3, 1, 2, 4)
        return z.reshape(n, k * r * r, -1).transpose(1, 2).reshape(-1, k * r * r)

    def reconstruction_loss(self, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
        """Mean squared reconstruction error ``||z − W Wᵀ z||²`` of the label patches (paper Eq. 3)."""
        z = self.patches(labels, ignore_index)
        w = self.reconstruction
        return ((z - (z @ w) @ w.T) ** 2).sum(dim=1).mean()

    @torch.no_grad()
    def fit(self, labels: torch.Tensor, ignore_index: int = 255) -> float:
        """Learn ``W`` from label maps by PCA of their patches; returns the reconstruction loss after fitting."""
        z = self.patches(labels, ignore_index)
        _, _, vh = torch.linalg.svd(z, full_matrices=False)
        basis = vh[: self.reconstruction.shape[1]].T
        self.reconstruction[:, : basis.shape[1]] = basis
        loss = float(self.reconstruction_loss(labels, ignore_index))
        log.info("DUpsampling: reconstruction matrix fitted on %d patches, loss %.4g", z.shape[0], loss)
        return loss


class DUNet(SegmentationModel):
    """DUpsampling network (Tian et al., CVPR 2019, arXiv:1903.02120; Fig. 2 and §3.1-3.3).

    ResNet-50 at output stride 16; low-level layer1 features (1×1 conv to 48) downsampled to the last
    feature map's resolution and concatenated with it (the paper's flexible aggregation); two 3×3 conv-BN-ReLU
    of 256; a 1×1 conv to ``N'`` compressed channels; DUpsampling ×16 with the label-learned reconstruction
    matrix; the adaptive-temperature softmax's learned temperature ``T`` divides the logits (§3.3).
    :meth:`prepare_training` fits ``W`` on training labels before the first step (``edgeseg train`` calls it).
    Paper: VOC12 test 85.3 (Xception-65), val 79.67 (ResNet-50 at OS 16 with DUpsampling).
    """

    def __init__(self, num_classes: int, depth: int = 50, output_stride: int = 16, compressed: int = 256,
                 low_level_channels: int = 48, channels: int = 256) -> None:
        super().__init__(num_classes)
        self.backbone = ResNet(depth, output_stride)
        c1, c4 = self.backbone.channels[0], self.backbone.channels[-1]
        self.low_level = ConvBNAct(c1, low_level_channels, 1)
        self.fuse = nn.Sequential(ConvBNAct(c4 + low_level_channels, channels, 3), ConvBNAct(channels, channels, 3),
                                  nn.Conv2d(channels, compressed, 1, bias=False))
        self.dupsample = DUpsampling(compressed, num_classes, output_stride)
        self.temperature = nn.Parameter(torch.ones(1))

    def forward_logits(self, x: torch.Tensor):
        c1, _, _, c4 = self.backbone(x)
        low = resize_to(self.low_level(c1), c4.shape[-2:])
        y = self.dupsample(self.fuse(torch.cat([c4, low], dim=1)))
        return self.to_input_size(y, x) / self.temperature, []

    def prepare_training(self, labels: torch.Tensor, ignore_index: int = 255) -> None:
        """Fit the reconstruction matrix on ``(N, H, W)`` training labels (cropped to multiples of ``r``)."""
        r = self.dupsample.scale
        h, w = labels.shape[-2] // r * r, labels.shape[-1] // r * r
        self.dupsample.fit(labels[:, :h, :w].to(self.dupsample.reconstruction.device), ignore_index)


@register_model(paper=PAPER, input_size=(512, 1024), family="dunet", size_divisor=16)
def dunet(*, num_classes: int, depth: int = 50, **kwargs) -> DUNet:
    """DUpsampling network with ResNet-50 at output stride 16."""
    return DUNet(num_classes, depth=depth, **kwargs)
