"""Pixel work inside the deploy graph: the camera frame → deploy input, labels → the frame, and the overlay.

The placement is :func:`edgeseg.data.geometry.placement` (the one the host uses), computed in Python at export,
so every size, offset and index below is a constant of the graph:

* **frame in** (:class:`FrameIn`): the raw uint8 frame (N×Hf×Wf×3, RGB or BGR) is cast to float, put in RGB
  order, resized bilinearly to the placement's scaled size (ONNX ``Resize`` linear, ``half_pixel``, constant
  scales: TensorRT and ONNX Runtime both take it; not antialiased, as TensorRT has no antialiased Resize, so a
  large downscale differs from the host's PIL path, see docs/run.md), then padded with 0 (letterbox) or cut
  (crop) to the deploy size. Normalisation follows in :class:`edgeseg.models.deploy.DeployModel`.
* **labels out** (:class:`LabelsOut`): nearest neighbour as two ``Gather`` ops with constant indices that
  reproduce :func:`edgeseg.data.geometry.labels_to_frame` pixel for pixel (PIL's NEAREST; letterbox: the
  placed region only; crop: pixels the deploy input did not see get the ignore value 255). The same indices
  compose with the nearest upsample from the logits' resolution (``--argmax-at logits``).
* **pictures** (:class:`Painter`): ``overlay`` and ``color`` look labels up in the tables of
  :func:`edgeseg.runtime.overlay.blend_tables` (``Gather``), blend over the frame in its own channel order,
  round down and cast to uint8, exactly as the host's :func:`edgeseg.runtime.overlay.blend`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.geometry import Placement
from edgeseg.runtime.overlay import IGNORE, blend_tables


def nearest_indices(out_len: int, in_len: int, offset: int = 0, limit: int | None = None) -> list[int]:
    """Source index of each of ``out_len`` outputs resized from ``in_len`` by nearest neighbour with half-pixel
    centres, exactly as PIL's NEAREST (the host's :func:`edgeseg.data.geometry.resize_labels`) computes it: the
    position ``(i + 0.5) · in / out`` accumulated step by step in double precision and truncated, so graph and
    host agree pixel for pixel (a closed form rounds some ties the other way). Shifted by ``offset``; an index
    outside ``[0, limit)`` becomes ``limit`` (a padding row or column holding the fill value)."""
    limit = in_len if limit is None else limit
    step = in_len / out_len
    position = step * 0.5
    out = []
    for _ in range(out_len):
        j = int(position) + offset
        out.append(j if 0 <= j < limit else limit)
        position += step
    return out


def _resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel, no antialias) to ``size`` with constant scales, so the exported Resize has no
    sizes computed from the input's shape (a dynamic batch would make that a Shape subgraph TensorRT rejects).
    The scales are nudged up by 1e-3 pixel so that ``floor(in · scale)`` is exactly ``size``."""
    (ih, iw), (oh, ow) = x.shape[-2:], size
    if (ih, iw) == (oh, ow):
        return x
    scales = ((oh + 1e-3) / ih, (ow + 1e-3) / iw)
    out = F.interpolate(x, scale_factor=scales, mode="bilinear", align_corners=False, antialias=False,
                        recompute_scale_factor=False)
    if tuple(out.shape[-2:]) != (oh, ow):  # pragma: no cover - the nudge makes this impossible for sides <= 8192
        raise RuntimeError(f"bilinear resize gave {tuple(out.shape[-2:])}, wanted {size}")
    return out


class FrameIn(nn.Module):
    """uint8 N×Hf×Wf×3 frame → (float N×3×h×w RGB pixels at the deploy size, float N×Hf×Wf×3 frame pixels in the
    frame's own channel order for the overlay). Values stay raw (0-255): normalising is the caller's."""

    def __init__(self, where: Placement, frame: tuple[int, int], bgr: bool = False) -> None:
        super().__init__()
        self.where, self.frame, self.bgr = where, tuple(frame), bgr

    def forward(self, image: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.to(dtype)
        rgb = pixels[..., [2, 1, 0]] if self.bgr else pixels
        x = _resize_bilinear(rgb.permute(0, 3, 1, 2), self.where.scaled)
        (h, w), (y, x0), (sh, sw) = self.where.size, self.where.offset, self.where.scaled
        if (y, x0) != (0, 0) or (sh, sw) != (h, w):
            if y >= 0 and x0 >= 0:  # letterbox: pad with black (0 before normalising, as the host pads)
                x = F.pad(x, (x0, w - sw - x0, y, h - sh - y), value=0.0)
            else:  # crop: cut the centre
                x = x[:, :, -y:-y + h, -x0:-x0 + w]
        return x, pixels


class LabelsOut(nn.Module):
    """Labels (float N×h'×w', at the deploy size or, for ``--argmax-at logits``, the logits' size) → float
    N×Hf×Wf at the frame's size: one row and one column Gather (nearest), 255 where the deploy input did not
    see the frame (crop)."""

    def __init__(self, where: Placement, frame: tuple[int, int]) -> None:
        super().__init__()
        self.where, self.frame = where, tuple(frame)
        self._cache: dict[tuple[int, int], tuple[list[int], list[int]]] = {}

    def indices(self, source: tuple[int, int]) -> tuple[list[int], list[int]]:
        """Row and column indices into a ``source``-sized label map padded by one row and column of 255."""
        if source not in self._cache:
            (h, w), (y, x), (sh, sw) = self.where.size, self.where.offset, self.where.scaled
            fh, fw = self.frame
            rows = nearest_indices(fh, sh, y, h)  # frame → deploy (placement), PIL-style nearest
            cols = nearest_indices(fw, sw, x, w)
            deploy_rows = nearest_indices(h, source[0])  # deploy → source (the logits' size), nearest
            deploy_cols = nearest_indices(w, source[1])
            self._cache[source] = ([deploy_rows[r] if r < h else source[0] for r in rows],
                                   [deploy_cols[c] if c < w else source[1] for c in cols])
        return self._cache[source]

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        source = (int(labels.shape[-2]), int(labels.shape[-1]))
        rows, cols = self.indices(source)
        if source == self.frame and rows == list(range(source[0])) and cols == list(range(source[1])):
            return labels
        if max(rows) == source[0] or max(cols) == source[1]:
            labels = F.pad(labels, (0, 1, 0, 1), value=float(IGNORE))
        labels = labels.index_select(1, torch.tensor(rows, device=labels.device))
        return labels.index_select(2, torch.tensor(cols, device=labels.device))


class Painter(nn.Module):
    """Labels at the frame size (float N×Hf×Wf) and the frame's pixels (float N×Hf×Wf×3) → ``overlay`` (the
    palette colours blended over the frame with weight ``alpha``) and ``color`` (the palette image), uint8
    N×Hf×Wf×3 in the frame's channel order."""

    def __init__(self, palette, alpha: float, bgr: bool = False) -> None:
        super().__init__()
        keep, weight, colour = blend_tables(palette, alpha, bgr)
        self.register_buffer("keep", torch.from_numpy(keep), persistent=False)
        self.register_buffer("weight", torch.from_numpy(weight), persistent=False)
        self.register_buffer("colour", torch.from_numpy(colour), persistent=False)

    def color(self, index: torch.Tensor) -> torch.Tensor:
        """The palette image of int labels (N×Hf×Wf)."""
        return self.colour[index].to(torch.uint8)

    def overlay(self, index: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """The blend of :func:`edgeseg.runtime.overlay.blend`, rounded down."""
        mixed = self.keep[index] * pixels.to(torch.float32) + self.weight[index] * self.colour[index]
        return torch.floor(mixed).clamp(0.0, 255.0).to(torch.uint8)
