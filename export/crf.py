"""ConvCRF into the bundle, two ways: ``crf.onnx`` on its own (logits + image in, labels out: the runtime chains it
after the model, and TensorRT builds it to its own engine) and ``model.crf.onnx`` with the CRF fused after the
model (image in, labels out). Both are simplified, linted for TensorRT and verified against torch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeseg.crf.convcrf import ConvCRF
from edgeseg.crf.params import CRFParams
from edgeseg.export.lint import simplify_and_lint
from edgeseg.export.onnx_export import export_module, export_onnx
from edgeseg.export.verify import require_agreement, verify_onnx
from edgeseg.models.deploy import DeployModel
from edgeseg.runtime.bundle import INPUT_NAME, LOGITS
from edgeseg.runtime.manifest import CRFSection

log = logging.getLogger(__name__)
STANDALONE, FUSED = "crf.onnx", "model.crf.onnx"


class CRFGraph(nn.Module):
    """The standalone CRF graph: logits (N, C, H, W) float32 and the image (N, H, W, 3) uint8 RGB → labels."""

    def __init__(self, crf: ConvCRF) -> None:
        super().__init__()
        self.crf = crf

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        refined = self.crf(logits, image.to(logits.dtype).permute(0, 3, 1, 2))
        return refined.argmax(dim=1).to(torch.float32).to(torch.uint8)


def _checked(path: Path, simplify: str) -> tuple[dict, object]:
    simplified, proto, lint = simplify_and_lint(path, simplify)
    return {"simplify": simplified, "node_count": lint.node_count, "lint_warnings": len(lint.warnings)}, proto


def _verify_standalone(proto, graph: CRFGraph, deploy: DeployModel, batch: int, size: tuple[int, int],
                       seed: int = 0) -> float:
    """Label agreement of ONNX Runtime with torch on the model's own logits for smooth random images."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (batch, max(1, size[0] // 16), max(1, size[1] // 16), 3), dtype=np.uint8)
    image = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[:, : size[0], : size[1]]
    image = np.ascontiguousarray(image)
    with torch.no_grad():
        pixels = torch.from_numpy(image).permute(0, 3, 1, 2).float()
        logits = deploy.model((pixels - deploy.mean) * deploy.inv_std)
        want = graph(logits, torch.from_numpy(image)).numpy()
    got = session.run(["labels"], {LOGITS: logits.numpy(), INPUT_NAME: image})[0]
    return float(np.mean(got == want))


def export_crf(root: Path, deploy: DeployModel, num_classes: int, params: CRFParams, size: tuple[int, int], *,
               batch: int,
               dynamic_batch: bool, opset: int, exporter: str, simplify: str, min_agreement: float) -> CRFSection:
    """Write ``crf.onnx`` and ``model.crf.onnx`` into ``root``; returns the manifest's ``crf`` section."""
    params.validate().check_size(size)
    crf = ConvCRF(num_classes, params).eval()
    graph = CRFGraph(crf)
    n = 2 if dynamic_batch else batch
    examples = {LOGITS: torch.zeros(n, crf.num_classes, *size), INPUT_NAME: torch.zeros(n, *size, 3, dtype=torch.uint8)}
    export_module(graph, root / STANDALONE, examples, ["labels"], dynamic_batch=dynamic_batch, opset=opset,
                  exporter=exporter)
    standalone, proto = _checked(root / STANDALONE, simplify)
    standalone["label_agreement"] = _verify_standalone(proto, graph, deploy, batch, size)
    fused_model = DeployModel(deploy.model, *deploy.normalization, outputs=("labels",), crf=crf)
    export_onnx(fused_model, root / FUSED, input_size=size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
                exporter=exporter)
    fused, proto = _checked(root / FUSED, simplify)
    fused["label_agreement"] = verify_onnx(proto, fused_model, size, random_batches=1)["label_agreement"]
    for name, info in ((STANDALONE, standalone), (FUSED, fused)):
        require_agreement(info["label_agreement"], min_agreement, f"the labels of {name}")
    log.info("ConvCRF exported: %s (%d nodes), %s (%d nodes)", STANDALONE, standalone["node_count"], FUSED,
             fused["node_count"])
    return CRFSection(params=params.to_dict(), standalone=STANDALONE, fused=FUSED, inputs=[LOGITS, INPUT_NAME],
                      files={STANDALONE: standalone, FUSED: fused})
