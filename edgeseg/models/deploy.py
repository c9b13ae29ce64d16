"""The deploy graph: uint8 NHWC RGB in, cast + normalize + transpose inside, uint8 labels (and on request
logits / probs) out. Every backend, calibration and the runtime share this one preprocessing."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.data.depth import DEPTH_MEAN_M, DEPTH_STD_M
from edgeseg.runtime.bundle import DEPTH_INPUT, INPUT_NAME, OUTPUTS, takes_depth


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The deploy graph's inputs: ``("image",)``, or ``("image", "depth")`` for an RGB-D model."""
    return (INPUT_NAME, DEPTH_INPUT) if getattr(model, "in_channels", 3) == 4 else (INPUT_NAME,)


def is_rgbd(model: nn.Module) -> bool:
    """Whether ``model`` takes depth besides the image (its deploy graph has a ``depth`` input)."""
    return takes_depth(input_names(model))


class DeployModel(nn.Module):
    """Wraps a segmentation model (eval mode, aux heads unused) for export.

    ``labels`` are ArgMax → Cast(float) → Cast(uint8): TensorRT converts to and from uint8 only via float
    types, so the int64 argmax goes through float32 first (exact for class indices < 2²⁴).
    With ``crf`` (a :class:`edgeseg.crf.convcrf.ConvCRF`) the logits are refined with the input image before
    any output is taken: the CRF is fused into the graph. An RGB-D model (``in_channels == 4``) takes a second
    input, ``depth``: float32 N×H×W metres, normalised in the graph and appended to the normalised image.
    """

    def __init__(self, model: nn.Module, mean, std, outputs=("labels",), crf: nn.Module | None = None) -> None:
        super().__init__()
        unknown = set(outputs) - set(OUTPUTS)
        if unknown or not outputs:
            raise ValueError(f"outputs must be a non-empty subset of {OUTPUTS}, got {outputs}")
        self.model = model.eval()
        self.crf = crf
        self.outputs = tuple(outputs)
        self.normalization = (tuple(mean), tuple(std))
        mean = torch.tensor(mean, dtype=torch.float32) * 255.0
        inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32) * 255.0)
        self.register_buffer("mean", mean.view(1, 1, 1, 3), persistent=False)
        self.register_buffer("inv_std", inv_std.view(1, 1, 1, 3), persistent=False)
        self.inputs = input_names(model)

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None):
        pixels = image.to(self.mean.dtype)  # float32, or float16 after .half()
        x = ((pixels - self.mean) * self.inv_std).permute(0, 3, 1, 2)
        if len(self.inputs) > 1:
            if depth is None:
                raise ValueError("this RGB-D model needs a depth input")
            d = (depth.to(self.mean.dtype) - DEPTH_MEAN_M) * (1.0 / DEPTH_STD_M)
            x = torch.cat([x, d.unsqueeze(1)], dim=1)
        logits = self.model(x)
        if self.crf is not None:
            logits = self.crf(logits, pixels.permute(0, 3, 1, 2))
        result = []
        for name in self.outputs:
            if name == "labels":
                result.append(logits.argmax(dim=1).to(torch.float32).to(torch.uint8))
            elif name == "logits":
                result.append(logits)
            else:
                result.append(torch.softmax(logits, dim=1))
        return tuple(result) if len(result) > 1 else result[0]
