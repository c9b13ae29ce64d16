"""Key map of DeepLab-LargeFOV as ported from the official Caffe prototxt (one ``features`` Sequential:
VGG16's convs at torchvision's indices, pool5a at 31, fc6 at 32, fc7 at 35, fc8 at 38)."""

from __future__ import annotations

import torch

from edgeseg.models.importers.keymap import KeyMap


def bgr_to_rgb(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reverse the first conv's input channels: weights trained on BGR input (Caffe, OpenCV) then take RGB, the
    deploy graph's order, with the same result."""
    out = dict(state)
    out["backbone.features.0.weight"] = state["backbone.features.0.weight"].flip(1).contiguous()
    return out


DEEPLAB_LARGEFOV = KeyMap(
    rules=[
        (r"^features\.32\.", "fc6."),
        (r"^features\.35\.", "fc7."),
        (r"^features\.38\.", "fc8."),
        (r"^features\.", "backbone.features."),
    ],
    transform=bgr_to_rgb,
)
