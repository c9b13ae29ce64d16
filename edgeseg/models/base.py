"""The contract every segmentation model in the zoo follows."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers.ops import resize_to


class SegmentationModel(nn.Module):
    """Base class: eval ``forward`` returns logits ``(N, C, H, W)`` at input size; train returns a tuple.

    Subclasses implement :meth:`forward_logits` returning ``(logits_at_input_size, aux_features)``, where
    ``aux_features`` lines up with ``self.aux_heads`` (an ``nn.ModuleDict``). Everything used only in training
    (the auxiliary/booster heads) lives under ``aux_heads`` and nowhere else, so the deploy graph and the
    deploy parameter count simply leave that subtree out.
    """

    num_classes: int
    aux_weight: float = 1.0  # loss weight of each aux head, as the model's paper trains it
    in_channels: int = 3  # channels of the normalised input: 3 (RGB), or 4 (RGB + depth) for RGB-D models
    native_logits: bool = False  # set by edgeseg.models.deploy.native_logits: skip the final upsample

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.aux_heads = nn.ModuleDict()

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def to_input_size(self, logits: torch.Tensor, x: torch.Tensor, align_corners: bool | None = False) -> torch.Tensor:
        """The final upsample of the logits to the input's size, which every model ends with; skipped (the logits
        returned at their own resolution) while :attr:`native_logits` is set, so a deploy graph can take the
        ArgMax there and upsample the labels instead (``edgeseg export --argmax-at logits``)."""
        if self.native_logits and not self.training:
            return logits
        return resize_to(logits, x.shape[-2:], align_corners=align_corners)

    def forward(self, x: torch.Tensor):
        logits, aux_features = self.forward_logits(x)
        if not self.training:
            return logits
        if len(aux_features) != len(self.aux_heads):
            raise RuntimeError(f"{type(self).__name__}: {len(aux_features)} aux features for "
                               f"{len(self.aux_heads)} aux heads")
        size = x.shape[-2:]
        aux = [resize_to(head(f), size) for head, f in zip(self.aux_heads.values(), aux_features)]
        return (logits, *aux)

    def deploy_parameters(self):
        """Parameters of the deploy graph: everything except the training-only ``aux_heads``."""
        return (p for name, p in self.named_parameters() if not name.startswith("aux_heads."))
