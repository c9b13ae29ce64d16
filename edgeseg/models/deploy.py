"""The deploy graph: uint8 NHWC RGB in, cast + normalize + transpose inside, uint8 labels (and on request
logits / probs / overlay / color) out. Every backend, calibration and the runtime share this one preprocessing.

With a ``frame`` size the graph takes the raw camera frame instead (any size, RGB or BGR) and does the frame ↔
deploy geometry itself (:mod:`edgeseg.models.frame_graph`): no host resize either way."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from edgeseg.data.depth import DEPTH_MEAN_M, DEPTH_STD_M
from edgeseg.data.geometry import DEFAULT_RESIZE, placement
from edgeseg.models.frame_graph import FrameIn, LabelsOut, Painter
from edgeseg.runtime.bundle import (
    ARGMAX_AT,
    COLOR,
    DEPTH_INPUT,
    INPUT_NAME,
    LABELS,
    LOGITS,
    OUTPUTS,
    OVERLAY,
    PICTURES,
    takes_depth,
)
from edgeseg.runtime.overlay import DEFAULT_ALPHA


def input_names(model: nn.Module) -> tuple[str, ...]:
    """The deploy graph's inputs: ``("image",)``, or ``("image", "depth")`` for an RGB-D model."""
    return (INPUT_NAME, DEPTH_INPUT) if getattr(model, "in_channels", 3) == 4 else (INPUT_NAME,)


def is_rgbd(model: nn.Module) -> bool:
    """Whether ``model`` takes depth besides the image (its deploy graph has a ``depth`` input)."""
    return takes_depth(input_names(model))


@contextmanager
def native_logits(model: nn.Module):
    """Run ``model`` with its final upsample of the logits to the input size skipped (the models of the zoo end
    with :meth:`edgeseg.models.base.SegmentationModel.to_input_size`): its logits come at their own resolution."""
    before = getattr(model, "native_logits", False)
    model.native_logits = True
    try:
        yield model
    finally:
        model.native_logits = before


class DeployModel(nn.Module):
    """Wraps a segmentation model (eval mode, aux heads unused) for export.

    ``labels`` are ArgMax → Cast(float) → Cast(uint8): TensorRT converts to and from uint8 only via float
    types, so the int64 argmax goes through float32 first (exact for class indices < 2²⁴).
    With ``crf`` (a :class:`edgeseg.crf.convcrf.ConvCRF`) the logits are refined with the input image before
    any output is taken: the CRF is fused into the graph. An RGB-D model (``in_channels == 4``) takes a second
    input, ``depth``: float32 N×H×W metres, normalised in the graph and appended to the normalised image.

    ``frame`` (H, W) with the deploy ``size``: the image input is the camera frame at that size in
    ``frame_format`` (``rgb`` or ``bgr``), mapped to ``size`` by ``resize`` inside the graph; ``labels``,
    ``overlay`` and ``color`` come back at the frame's size, ``logits`` and ``probs`` at the deploy size.
    ``overlay`` / ``color`` need the ``palette``; ``alpha`` is the colour's weight in the overlay.
    ``argmax_at="logits"`` takes the ArgMax at the logits' own resolution (the model's final upsample skipped)
    and upsamples the labels (nearest); the ``logits`` output is then the one the ArgMax reads.
    """

    def __init__(self, model: nn.Module, mean, std, outputs=("labels",), crf: nn.Module | None = None, *,
                 frame: tuple[int, int] | None = None, size: tuple[int, int] | None = None,
                 resize: str = DEFAULT_RESIZE, frame_format: str = "rgb", palette=None,
                 alpha: float = DEFAULT_ALPHA, argmax_at: str = "output") -> None:
        super().__init__()
        unknown = set(outputs) - set(OUTPUTS)
        if unknown or not outputs:
            raise ValueError(f"outputs must be a non-empty subset of {OUTPUTS}, got {outputs}")
        if argmax_at not in ARGMAX_AT:
            raise ValueError(f"argmax_at must be one of {ARGMAX_AT}, got {argmax_at!r}")
        if frame_format not in ("rgb", "bgr"):
            raise ValueError(f"frame_format must be rgb or bgr, got {frame_format!r}")
        if frame is not None and size is None:
            raise ValueError("a frame-size deploy graph needs the deploy size")
        if set(outputs) & set(PICTURES) and palette is None:
            raise ValueError("overlay and color outputs need the palette")
        self.model = model.eval()
        self.crf = crf
        self.outputs = tuple(outputs)
        self.normalization = (tuple(mean), tuple(std))
        self.options = dict(frame=frame, size=size, resize=resize, frame_format=frame_format, palette=palette,
                            alpha=alpha, argmax_at=argmax_at)
        self.argmax_at = argmax_at
        mean = torch.tensor(mean, dtype=torch.float32) * 255.0
        inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32) * 255.0)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", inv_std.view(1, 3, 1, 1), persistent=False)
        self.inputs = input_names(model)
        self.frame = tuple(frame) if frame is not None else None
        if self.frame is not None:
            where = placement(self.frame, tuple(size), resize)  # type: ignore[arg-type]
            self.frame_in: FrameIn | None = FrameIn(where, self.frame, bgr=frame_format == "bgr")
            self.labels_out: LabelsOut | None = LabelsOut(where, self.frame)
        else:
            self.frame_in = None
            self.labels_out = None
        self.painter = Painter(palette, alpha, bgr=frame_format == "bgr") if palette is not None else None

    def like(self, **changes) -> DeployModel:
        """The same deploy graph (model, normalisation, CRF, frame geometry) with some options changed."""
        options = {**self.options, "outputs": self.outputs, "crf": self.crf, **changes}
        return DeployModel(self.model, *self.normalization, **options)

    def _to_frame(self, labels: torch.Tensor) -> torch.Tensor:
        """float labels N×h'×w' → the frame's size (or the deploy size without a frame), nearest."""
        if self.labels_out is not None:
            return self.labels_out(labels)
        return labels

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None):
        dtype = self.mean.dtype  # float32, or float16 after .half()
        if self.frame_in is not None:
            pixels_nchw, pixels = self.frame_in(image, dtype)
        else:
            pixels = image.to(dtype)
            pixels_nchw = pixels.permute(0, 3, 1, 2)
        x = (pixels_nchw - self.mean) * self.inv_std
        if len(self.inputs) > 1:
            if depth is None:
                raise ValueError("this RGB-D model needs a depth input")
            d = (depth.to(dtype) - DEPTH_MEAN_M) * (1.0 / DEPTH_STD_M)
            x = torch.cat([x, d.unsqueeze(1)], dim=1)
        if self.argmax_at == "logits":
            with native_logits(self.model):
                logits = self.model(x)
            # the labels at the logits' resolution, upsampled by nearest (the deploy size's indices composed
            # with the frame's in one Gather pair when there is a frame)
            labels = logits.argmax(dim=1).to(torch.float32)
            if self.labels_out is not None:
                labels = self.labels_out(labels)
            else:
                labels = LabelsOut(placement(tuple(x.shape[-2:]), tuple(x.shape[-2:])),
                                   tuple(x.shape[-2:]))(labels)
        else:
            logits = self.model(x)
            if self.crf is not None:
                logits = self.crf(logits, pixels_nchw)
            labels = None
        result = []
        index = None
        for name in self.outputs:
            if name in (LABELS, OVERLAY, COLOR) and labels is None:
                labels = self._to_frame(logits.argmax(dim=1).to(torch.float32))
            if name == LABELS:
                result.append(labels.to(torch.uint8))
            elif name == LOGITS:
                result.append(logits)
            elif name in PICTURES:
                assert self.painter is not None and labels is not None
                index = labels.to(torch.int64) if index is None else index
                result.append(self.painter.overlay(index, pixels) if name == OVERLAY else self.painter.color(index))
            else:
                result.append(torch.softmax(logits, dim=1))
        return tuple(result) if len(result) > 1 else result[0]
