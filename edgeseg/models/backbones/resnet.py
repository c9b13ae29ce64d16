"""ResNet (He et al., CVPR 2016) with torchvision's state-dict names and output stride 8 / 16 / 32.

Keys match ``torchvision.models.resnet*`` exactly (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so ImageNet
weights saved from torchvision load with :func:`edgeseg.models.backbones.load_backbone_weights`. The
classifier (``fc``) is not built; its keys are ignored on load. Output stride < 32 replaces the stride of the
last stage(s) with dilation; ``multi_grid`` multiplies the dilation of ``layer4``'s blocks (DeepLab v3's unit
rates, e.g. ``(1, 2, 4)``).

Where the first block of a dilated stage dilates differs between the references: torchvision's
``replace_stride_with_dilation`` (DeepLabV3, and DANet's code, which follows it) gives it the *previous* stage's
dilation (layer3.0 at 1, layer4.0 at 2 for output stride 8); the DeepLab v2 Caffe models and PSPNet's code dilate
every block of the stage (layer3.0 at 2, layer4.0 at 4). ``dilate_first_block=False`` (default) is torchvision's,
``True`` the other; the weights have the same shapes either way, only the computation differs.
"""

from __future__ import annotations

import torch
from torch import nn


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _downsample(in_channels, channels, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
           50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNet(nn.Module):
    """ResNet trunk returning the features of ``layer1..layer4`` (strides 4, 8, 16, 32 at output stride 32).

    ``in_channels`` other than 3 gives e.g. a depth branch (ACNet's 1-channel ``conv1``); ``stem=False`` leaves
    out ``conv1``/``bn1`` (a trunk fed with stem features by its owner); :meth:`stem` and :attr:`stages` let a
    model interleave several trunks stage by stage.
    """

    def __init__(self, depth: int = 18, output_stride: int = 32, *, in_channels: int = 3, stem: bool = True,
                 multi_grid: tuple[int, ...] | None = None, dilate_first_block: bool = False) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(_DEPTHS)}, got {depth}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        block, counts = _DEPTHS[depth]
        if multi_grid is not None and len(multi_grid) != counts[3]:
            raise ValueError(f"multi_grid needs one rate per layer4 block ({counts[3]}), got {multi_grid}")
        self.has_stem = stem
        self.dilate_first_block = dilate_first_block
        if stem:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        dilate_from = {32: 5, 16: 4, 8: 3}[output_stride]  # first stage index (2..4) that dilates instead
        self._in = 64
        self._dilation = 1
        self.layer1 = self._stage(block, 64, counts[0], 1, False)
        self.layer2 = self._stage(block, 128, counts[1], 2, dilate_from <= 2)
        self.layer3 = self._stage(block, 256, counts[2], 2, dilate_from <= 3)
        self.layer4 = self._stage(block, 512, counts[3], 2, dilate_from <= 4, multi_grid)
        self.channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block, channels: int, count: int, stride: int, dilate: bool,
               multi_grid: tuple[int, ...] | None = None) -> nn.Sequential:
        previous = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        grid = multi_grid or (1,) * count
        if multi_grid is not None:
            first = self._dilation * grid[0]
        else:
            first = self._dilation if self.dilate_first_block else previous
        layers = [block(self._in, channels, stride, first)]
        self._in = channels * block.expansion
        layers += [block(self._in, channels, 1, self._dilation * grid[i]) for i in range(1, count)]
        return nn.Sequential(*layers)

    @property
    def stages(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        return self.layer1, self.layer2, self.layer3, self.layer4

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``conv1 → bn1 → relu`` (stride 2, before the max-pool)."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.stem(x) if self.has_stem else x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
