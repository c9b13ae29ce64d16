"""The edgeseg checkpoint: one ``.pt`` with the state dict, the model name and kwargs, and :class:`ModelMeta`.

Loaded with ``torch.load(weights_only=True)``: only tensors and plain containers, never pickled code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from edgeseg.errors import CheckpointError
from edgeseg.fileio import atomic_path
from edgeseg.meta import ModelMeta

log = logging.getLogger(__name__)

FORMAT = "edgeseg-checkpoint"
FORMAT_VERSION = 1
AUX_PREFIX = "aux_heads."  # training-only heads: optional in a checkpoint


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, name: str, kwargs: dict | None = None,
                    meta: ModelMeta | None = None, extra: dict | None = None, compact: bool = False) -> Path:
    """Write ``model``'s weights with everything needed to rebuild it; atomic (temp file + rename).

    ``kwargs`` default to those :func:`edgeseg.models.create` recorded on the model. ``compact`` keeps only
    the deploy graph (no training-only ``aux_heads``) in float16: under half the size, for shipping trained
    weights; it loads into a float32 model as usual.
    """
    num_classes = getattr(model, "num_classes", None)
    meta = meta or ModelMeta.default(num_classes or 19)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": name,
        "kwargs": dict(kwargs if kwargs is not None else getattr(model, "build_kwargs", {})),
        "num_classes": num_classes,
        "meta": meta.to_dict(),
        "state_dict": _state(model, compact),
        "compact": compact,
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _state(model: nn.Module, compact: bool) -> dict:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if compact:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()
                 if not k.startswith(AUX_PREFIX)}
    return state


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint (edgeseg format, or a bare state dict such as torchvision's ImageNet weights).

    Returns a dict with at least ``state_dict``; edgeseg checkpoints also carry ``model``, ``kwargs``,
    ``num_classes`` and ``meta`` (a :class:`ModelMeta`). Errors are :class:`CheckpointError`.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / non-weights files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {p}: {first}") from exc
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"{p} was written by a newer edgeseg (format {obj['format_version']})")
        out = dict(obj)
        out["meta"] = ModelMeta.from_dict(obj["meta"])
        return out
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj}
    raise CheckpointError(f"{p} is neither an edgeseg checkpoint nor a state dict")


def load_state(model: nn.Module, state_dict: dict, *, source: str = "checkpoint",
               allow_head_mismatch: bool = False) -> list[str]:
    """Load ``state_dict`` into ``model``; return the keys dropped because their shape differs.

    Shape mismatches are only tolerated when ``allow_head_mismatch`` (the class count differs): those keys
    are dropped with a warning and keep their fresh initialisation. Missing or unexpected keys are errors.
    """
    own = model.state_dict()
    dropped = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if dropped and not allow_head_mismatch:
        k = dropped[0]
        raise CheckpointError(f"{source}: shape of {k} is {tuple(state_dict[k].shape)}, "
                              f"model expects {tuple(own[k].shape)}")
    state = {k: v for k, v in state_dict.items() if k not in dropped}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in dropped and not k.startswith(AUX_PREFIX)]
    if missing or result.unexpected_keys:
        what = (f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}" if missing
                else f"unexpected {result.unexpected_keys[:3]}")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {what}")
    if dropped:
        log.warning("%s: class count differs, re-initialised %d head tensors (%s%s)", source, len(dropped),
                    ", ".join(dropped[:4]), ", ..." if len(dropped) > 4 else "")
    return dropped
