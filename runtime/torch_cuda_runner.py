"""PyTorch on an NVIDIA GPU behind the same async contract as the TensorRT runner.

The point is to measure the pipeline on a GPU without TensorRT and to compare with it. Each of ``slots``
execution slots owns a CUDA stream, pinned host buffers, a device input buffer and four timing events; a thread
calling ``infer`` takes a free slot, so K threads keep K frames in flight on K streams: H2D → model → D2H,
timed with CUDA events into ``last_stages_ms`` (h2d, compute, d2h). ``precision="fp16"`` runs the weights and
the preprocessing in half precision; ``channels_last`` keeps activations NHWC (tensor cores like it, and the
uint8 NHWC input permuted to NCHW is already in that layout). With ``cuda_graph`` each slot's forward pass is
captured once in :meth:`activate`, after warm-up, and replayed for every frame. With ``crf``, ConvCRF runs
fused after the model on the same stream (it is then part of the "compute" stage).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.crf.params import CRFParams
from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import BACKENDS
from edgeseg.runtime.runner import Runner, SlotPool, TensorSpec
from edgeseg.runtime.torch_runner import deploy_model

log = logging.getLogger(__name__)
WARMUP_RUNS = 3


def cuda_unavailable(torch: Any) -> str | None:
    """Why torch cannot run on a GPU here, or None when it can."""
    if not torch.backends.cuda.is_built():
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    if not torch.cuda.is_available():
        return "torch finds no usable NVIDIA GPU (torch.cuda.is_available() is False)"
    return None


class _Slot:
    """One stream's buffers: ``out`` holds the device outputs the graph (or the last eager run) wrote."""

    def __init__(self, torch: Any, shape: tuple[int, ...], device: Any) -> None:
        self.stream = torch.cuda.Stream(device)
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self.host_in = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.device_in = torch.empty(shape, dtype=torch.uint8, device=device)
        self.out: tuple = ()
        self.host_out: tuple = ()
        self.graph: Any = None


class TorchCudaRunner(Runner):
    """An edgeseg checkpoint in the deploy graph on ``device`` (``cuda`` or ``cuda:N``), ``slots`` streams."""

    backend = "torch-cuda"
    times_itself = True

    def __init__(self, checkpoint: str | os.PathLike, input_size: tuple[int, int], batch: int | str = 1,
                 outputs: tuple[str, ...] = ("labels",), *, device: str = "cuda", precision: str = "fp16",
                 channels_last: bool = True, cuda_graph: bool = False, slots: int = 1,
                 crf: CRFParams | None = None, graph: dict | None = None) -> None:
        super().__init__(f"torch-cuda:{Path(checkpoint).name}")
        self.graph = graph  # the bundle's pixel-work options; input_size is then the frame size
        if precision not in BACKENDS["torch"].precisions:
            raise EdgesegError(f"the torch CUDA backend runs fp32 or fp16, not {precision}")
        if not isinstance(batch, int):
            raise EdgesegError("the torch CUDA backend needs a fixed batch size (its buffers are allocated once)")
        self.checkpoint, self.shape = Path(checkpoint), (batch, *input_size, 3)
        self.output_names, self.device_name, self.precision = tuple(outputs), device, precision
        self.channels_last, self.cuda_graph, self.slots, self.crf = channels_last, cuda_graph, slots, crf
        self.model: Any = None
        self._pool = SlotPool()
        self._outputs: list[TensorSpec] = []
        self._device_mib: float | None = None

    def activate(self) -> None:
        import torch

        reason = cuda_unavailable(torch)
        if reason:
            raise EdgesegError(f"the torch CUDA backend cannot run: {reason}; use --device cpu or "
                               f"--backend onnxruntime")
        self.torch, self.device = torch, torch.device(self.device_name)
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(self.device)
        model, _ = deploy_model(self.checkpoint, self.output_names, self.crf, self.graph)
        if len(model.inputs) > 1:
            raise EdgesegError(f"{self.checkpoint.name} is an RGB-D model: the CUDA torch runner takes one image "
                               "input; run it on ONNX Runtime, TensorRT or --device cpu")
        model = model.to(self.device)
        if self.precision == "fp16":
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        for _ in range(self.slots):
            slot = _Slot(torch, self.shape, self.device)
            self._prepare(slot)
            self._pool.add(slot)
        self._device_mib = torch.cuda.max_memory_allocated(self.device) / 2**20

    def _forward(self, slot: _Slot) -> tuple:
        out = self.model(slot.device_in)
        return out if isinstance(out, tuple) else (out,)

    def _prepare(self, slot: _Slot) -> None:
        """Warm up on the slot's stream (cuDNN picks its algorithms), allocate the pinned outputs, and capture
        the forward pass into a CUDA graph when asked."""
        torch = self.torch
        # the weights were moved and the buffers allocated on the current stream: the slot's side stream must
        # wait for that work before it reads them (torch does not order streams by itself)
        slot.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(slot.stream):
            slot.device_in.zero_()
            for _ in range(WARMUP_RUNS):
                slot.out = self._forward(slot)
            if self.cuda_graph:
                slot.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(slot.graph, stream=slot.stream):
                    slot.out = self._forward(slot)
        slot.stream.synchronize()
        slot.host_out = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in slot.out)
        self._outputs = [TensorSpec(name, str(t.dtype).removeprefix("torch."), tuple(t.shape))
                         for name, t in zip(self.output_names, slot.out)]

    def deactivate(self) -> None:
        for slot in self._pool.all:
            slot.stream.synchronize()
        self._pool.clear()
        self.model = None

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("image", "uint8", self.shape)]

    def outputs(self) -> list[TensorSpec]:
        if not self._outputs:
            raise RuntimeError(f"{self.name}: outputs are known once the runner is active")
        return self._outputs

    def device_memory_mib(self) -> float | None:
        return self._device_mib

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with self._pool.take() as slot, torch.inference_mode():
            e = slot.events
            slot.host_in.numpy()[...] = feed["image"]
            with torch.cuda.stream(slot.stream):
                e[0].record(slot.stream)
                slot.device_in.copy_(slot.host_in, non_blocking=True)
                e[1].record(slot.stream)
                if slot.graph is not None:
                    slot.graph.replay()
                else:
                    slot.out = self._forward(slot)
                e[2].record(slot.stream)
                for host, dev in zip(slot.host_out, slot.out):
                    host.copy_(dev, non_blocking=True)
                e[3].record(slot.stream)
            slot.stream.synchronize()
            self.last_stages_ms = {"h2d": e[0].elapsed_time(e[1]), "compute": e[1].elapsed_time(e[2]),
                                   "d2h": e[2].elapsed_time(e[3])}
            self.last_latency_ms = e[0].elapsed_time(e[3])
            return {name: host.numpy().copy() for name, host in zip(self.output_names, slot.host_out)}
