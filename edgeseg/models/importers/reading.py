"""Reading a published checkpoint: safe loading, unwrapping and the prefixes training wrappers add.

Published weights come as a bare state dict, or nested under ``state_dict`` / ``model`` / ``params`` /
``model_state`` (with optimizer state and epoch counters beside them), and with a ``module.`` prefix on every
key when they were saved from ``nn.DataParallel`` or ``DistributedDataParallel``. Everything is read with
``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from edgeseg.errors import CheckpointError
from edgeseg.models.checkpoint import FORMAT as EDGESEG_FORMAT
from edgeseg.models.checkpoint import _torch_load

log = logging.getLogger(__name__)

NESTING_KEYS = ("state_dict", "model", "params", "model_state", "model_state_dict", "net")
WRAPPER_PREFIXES = ("module.", "model.")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a published checkpoint as one flat ``{key: tensor}`` dict, wrappers removed.

    A file that is not a PyTorch checkpoint, holds pickled code, is an edgeseg checkpoint already, or holds no
    state dict at any of the usual places is a :class:`CheckpointError` (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    obj = _torch_load(p)
    if isinstance(obj, dict) and obj.get("format") == EDGESEG_FORMAT:
        raise CheckpointError(f"{p} is an edgeseg checkpoint already (model {obj.get('model')!r}); use it as it is")
    state = _find_state(obj)
    if state is None:
        raise CheckpointError(f"{p} holds no state dict (a mapping of names to tensors), neither at the top nor "
                              f"under {', '.join(NESTING_KEYS)}")
    return strip_wrappers(state)


def _find_state(obj, depth: int = 0) -> dict | None:
    if _is_state(obj):
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not isinstance(obj, dict) or depth > 2:
        return None
    for key in NESTING_KEYS:
        if key in obj:
            found = _find_state(obj[key], depth + 1)
            if found is not None:
                return found
    return None


def _is_state(obj) -> bool:
    """A state dict: string keys, tensors for (nearly) all values; a few non-tensor entries (a saved epoch, a
    ``_metadata``-like leftover) are tolerated when most entries are tensors."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        return False
    tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
    return tensors > 0 and tensors >= 0.9 * len(obj)


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.`` (DataParallel) or ``model.`` prefix that every key carries."""
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            log.debug("removed the %r prefix of every key", prefix)
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state
