"""PyTorch backend behind the runner contract: the same uint8 NHWC in / labels out as the deploy graph.
Imported only when asked for (``backend="torch"``): the rest of the runtime never imports torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.crf.params import CRFParams
from edgeseg.runtime.bundle import DEPTH_INPUT, PICTURES
from edgeseg.runtime.runner import Runner, TensorSpec


def deploy_model(checkpoint: Path, outputs: tuple[str, ...], crf: CRFParams | None = None,
                 graph: dict | None = None) -> tuple[Any, int]:
    """The checkpoint's model inside the deploy graph (uint8 NHWC in), in eval mode, and its class count; with
    ``crf``, ConvCRF fused after the model; ``graph``: the bundle's pixel-work options
    (:func:`edgeseg.runtime.bundle.graph_options`)."""
    from edgeseg.models import load_model
    from edgeseg.models.deploy import DeployModel

    model, meta, _ = load_model(checkpoint)
    refine = None
    if crf is not None:
        from edgeseg.crf.convcrf import ConvCRF

        refine = ConvCRF(meta.num_classes, crf)
    deploy = DeployModel(model, meta.mean, meta.std, outputs=outputs, crf=refine, **(graph or {}))
    return deploy.eval(), meta.num_classes


class TorchRunner(Runner):
    """Runs an edgeseg checkpoint wrapped in the deploy graph's pre/post-processing (eager mode)."""

    backend = "torch"

    def __init__(self, checkpoint: str | os.PathLike, input_size: tuple[int, int], batch: int | str = 1,
                 outputs=("labels",), device: str = "cpu", threads: int | None = None,
                 crf: CRFParams | None = None, graph: dict | None = None) -> None:
        super().__init__(f"torch:{Path(checkpoint).name}")
        self.checkpoint, self.input_size, self.batch = Path(checkpoint), tuple(input_size), batch
        self.graph = graph or {}
        self.frame = tuple(self.graph.get("frame") or input_size)  # what the image input, labels and pictures take
        self.output_names, self.device, self.threads, self.crf = tuple(outputs), device, threads, crf
        self.model: Any = None

    def activate(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        self.model, self.num_classes = deploy_model(self.checkpoint, self.output_names, self.crf, self.graph)
        self.model.to(self.device)

    def deactivate(self) -> None:
        self.model = None

    def inputs(self) -> list[TensorSpec]:
        specs = [TensorSpec("image", "uint8", (self.batch, *self.frame, 3))]
        if self.model is not None and DEPTH_INPUT in self.model.inputs:
            specs.append(TensorSpec(DEPTH_INPUT, "float32", (self.batch, *self.input_size)))
        return specs

    def outputs(self) -> list[TensorSpec]:
        specs = []
        for name in self.output_names:
            if name == "labels":
                specs.append(TensorSpec(name, "uint8", (self.batch, *self.frame)))
            elif name in PICTURES:
                specs.append(TensorSpec(name, "uint8", (self.batch, *self.frame, 3)))
            else:
                specs.append(TensorSpec(name, "float32", (self.batch, self.num_classes, *self.input_size)))
        return specs

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            tensors = (torch.from_numpy(np.require(feed[name], requirements="W")) for name in self.model.inputs)
            out = self.model(*(t.to(self.device) for t in tensors))
        out = out if isinstance(out, tuple) else (out,)
        return {name: t.cpu().numpy() for name, t in zip(self.output_names, out)}
