"""torch → ONNX with the dynamo exporter (default) or the TorchScript one, static spatial size."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from edgeseg.errors import EdgesegError
from edgeseg.export.trt_support import OPSET_RANGE
from edgeseg.fileio import atomic_path
from edgeseg.models.deploy import DeployModel
from edgeseg.runtime.bundle import DEPTH_INPUT, INPUT_NAME
from edgeseg.stdio import stdout_to_stderr

log = logging.getLogger(__name__)

# Opsets each exporter writes itself (torch 2.13): the dynamo exporter builds opset 18 and newer and reaches an
# older one only through onnx's version converter, which fails on Resize and falls back to 18; the TorchScript
# exporter knows opsets up to 23. Intersected with what TensorRT's ONNX parser reads (OPSET_RANGE).
EXPORTER_OPSETS = {"dynamo": (18, 24), "torchscript": (9, 23)}


def check_opset(opset: int, exporter: str) -> None:
    """Refuse, before exporting, an opset the exporter cannot write natively or TensorRT cannot parse."""
    if exporter not in EXPORTER_OPSETS:
        raise EdgesegError(f"unknown exporter {exporter!r}; choose {' or '.join(EXPORTER_OPSETS)}")
    low, high = max(EXPORTER_OPSETS[exporter][0], OPSET_RANGE[0]), min(EXPORTER_OPSETS[exporter][1], OPSET_RANGE[1])
    if low <= opset <= high:
        return
    hint = ""
    if exporter == "dynamo" and OPSET_RANGE[0] <= opset < low:
        hint = " (older opsets: --exporter torchscript)"
    raise EdgesegError(f"--opset {opset}: the {exporter} exporter and TensorRT's parser take opsets {low}-{high}"
                       f"{hint}")


def export_onnx(deploy: DeployModel, path: str | Path, *, input_size: tuple[int, int], batch: int = 1,
                dynamic_batch: bool = False, opset: int = 18, exporter: str = "dynamo") -> int:
    """Write ``deploy`` as ONNX to ``path`` (atomically); returns the opset actually written.

    Spatial size is always static (dynamic H/W lets exporters freeze pooling at the export shape silently); the batch
    is static unless ``dynamic_batch``.
    """
    h, w = input_size
    n = batch if not dynamic_batch else 2
    examples = {INPUT_NAME: torch.zeros(n, h, w, 3, dtype=torch.uint8)}
    if DEPTH_INPUT in deploy.inputs:
        examples[DEPTH_INPUT] = torch.zeros(n, h, w, dtype=torch.float32)
    return export_module(deploy, path, examples, list(deploy.outputs), dynamic_batch=dynamic_batch,
                         opset=opset, exporter=exporter)


def export_module(module: torch.nn.Module, path: str | Path, examples: dict[str, torch.Tensor],
                  output_names: list[str], *, dynamic_batch: bool = False, opset: int = 18,
                  exporter: str = "dynamo") -> int:
    """Write any module with named inputs (example tensors, static shapes but for an optional dynamic batch)."""
    import onnx

    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # per-rewrite INFO lines from the exporter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # "torchvision is not installed. Skipping torchvision::nms": we never export torchvision ops
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    names, args = list(examples), tuple(examples.values())
    module.eval()
    with warnings.catch_warnings(), atomic_path(path) as tmp, stdout_to_stderr():  # the exporter's prints: logs
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            shapes = tuple({0: batch} for _ in names) if dynamic_batch else None
            program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, verbose=False,
                                        input_names=names, output_names=output_names, dynamic_shapes=shapes,
                                        optimize=True)
            if program is None:
                raise EdgesegError("the dynamo exporter returned no program")
            proto = program.model_proto
        elif exporter == "torchscript":
            axes = {n: {0: "batch"} for n in names + output_names} if dynamic_batch else None
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                              input_names=names, output_names=output_names, dynamic_axes=axes,
                              do_constant_folding=True)
            proto = onnx.load(str(tmp))
        else:
            raise EdgesegError(f"unknown exporter {exporter!r}; choose dynamo or torchscript")
        written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
        if written != opset:
            raise EdgesegError(f"asked for opset {opset}, the {exporter} exporter wrote opset {written}; choose "
                               f"--opset {written}")
        proto.producer_name = "edgeseg"
        onnx.save(proto, str(tmp))
    return int(written)
