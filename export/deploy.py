"""The deploy graph: uint8 NHWC RGB in, cast + normalize + transpose inside, uint8 labels (and on request
logits / probs) out. Every backend, calibration and the runtime share this one preprocessing."""

from __future__ import annotations

import torch
from torch import nn

OUTPUTS = ("labels", "logits", "probs")
INPUT_NAME = "image"


class DeployModel(nn.Module):
    """Wraps a segmentation model (eval mode, aux heads unused) for export.

    ``labels`` are ArgMax → Cast(float) → Cast(uint8): TensorRT converts to and from uint8 only via float
    types, so the int64 argmax goes through float32 first (exact for class indices < 2²⁴).
    With ``crf`` (a :class:`edgeseg.crf.convcrf.ConvCRF`) the logits are refined with the input image before
    any output is taken: the CRF is fused into the graph.
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

    def forward(self, image: torch.Tensor):
        pixels = image.to(self.mean.dtype)  # float32, or float16 after .half()
        logits = self.model(((pixels - self.mean) * self.inv_std).permute(0, 3, 1, 2))
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
