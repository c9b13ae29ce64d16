"""The model zoo: ``create(name, num_classes=..., weights=...)``, ``list_models(pattern)``.

Importing this package imports torch and registers every model family.
"""

from __future__ import annotations

import os

from torch import nn

from edgeseg.errors import CheckpointError
from edgeseg.meta import ModelMeta
from edgeseg.models import (  # noqa: F401  (registration)
    acnet,
    bisenetv1,
    bisenetv2,
    danet,
    deeplab,
    deeplabv3,
    dfanet,
    dilated_context,
    dunet,
    fastfcn,
    fcn,
    lednet,
    pspnet,
    refinenet,
)
from edgeseg.models.base import SegmentationModel
from edgeseg.models.checkpoint import load_checkpoint, load_state, save_checkpoint
from edgeseg.models.profile import count_flops, count_parameters
from edgeseg.models.registry import ModelInfo, build, list_models, model_info, register_model

DEFAULT_NUM_CLASSES = 19


def create(name: str, *, num_classes: int | None = None, weights: str | os.PathLike | None = None,
           **kwargs) -> nn.Module:
    """Build model ``name``; with ``weights`` (an edgeseg checkpoint or a bare state dict), load it.

    ``num_classes`` defaults to the checkpoint's, else 19 (Cityscapes). When it differs from the checkpoint's,
    the classifier tensors are dropped with a warning and the rest is loaded (fine-tuning on new classes).
    Model kwargs stored in the checkpoint apply unless overridden here.
    """
    ckpt = load_checkpoint(weights) if weights is not None else None
    return _create_from(name, ckpt, str(weights), num_classes, kwargs)


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ModelMeta, str]:
    """Rebuild the model stored in an edgeseg checkpoint: ``(model, meta, name)``."""
    ckpt = load_checkpoint(path)
    if "model" not in ckpt:
        raise CheckpointError(f"{path} is a bare state dict (weights only: no model name, classes or "
                              f"preprocessing), not an edgeseg checkpoint; make one by training from it: edgeseg "
                              f"train --model NAME --data SPEC --set weights={path}")
    return _create_from(ckpt["model"], ckpt, str(path), None, {}), ckpt["meta"], ckpt["model"]


def _create_from(name: str, ckpt: dict | None, source: str, num_classes: int | None, kwargs: dict) -> nn.Module:
    info = model_info(name)
    if ckpt is not None and ckpt.get("model") not in (None, name):
        raise CheckpointError(f"{source} holds a {ckpt['model']!r} model, not {name!r}")
    ckpt_classes = ckpt.get("num_classes") if ckpt else None
    if num_classes is None:
        num_classes = ckpt_classes or DEFAULT_NUM_CLASSES
    model_kwargs = {**(ckpt.get("kwargs", {}) if ckpt else {}), **kwargs}
    model = build(info.name, num_classes=num_classes, **model_kwargs)
    model.build_kwargs = dict(model_kwargs)  # what save_checkpoint records to rebuild it
    if ckpt is not None:
        mismatch = ckpt_classes is not None and ckpt_classes != num_classes
        load_state(model, ckpt["state_dict"], source=source, allow_head_mismatch=mismatch)
    return model


__all__ = ["DEFAULT_NUM_CLASSES", "ModelInfo", "ModelMeta", "SegmentationModel", "build", "count_flops",
           "count_parameters", "create", "list_models", "load_checkpoint", "load_model", "load_state",
           "model_info", "register_model", "save_checkpoint"]
