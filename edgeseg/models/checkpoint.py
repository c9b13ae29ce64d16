"""The edgeseg checkpoint: one ``.pt`` with the state dict, the model name and kwargs, and :class:`ModelMeta`.

Loaded with ``torch.load(weights_only=True)``: only tensors and plain containers, never pickled code.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from edgeseg.errors import CheckpointError, EdgesegError
from edgeseg.fileio import atomic_path, os_error
from edgeseg.meta import ModelMeta

log = logging.getLogger(__name__)

FORMAT = "edgeseg-checkpoint"
FORMAT_VERSION = 2
# Defaults that changed after format 1 (to follow the authors' released models): a format-1 checkpoint that did
# not set them was trained with the old value, and is rebuilt with it so it computes what it computed.
FORMAT_1_DEFAULTS = {
    "refinenet": {"crp_blocks": 2, "classifier_kernel": 1},
    "pspnet": {"dilate_first_block": False},
    "deeplabv2": {"dilate_first_block": False},
    "dilated_context": {"context": "large"},
}
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
        try:
            torch.save(payload, tmp)
        except OSError as exc:
            raise os_error(exc, path) from exc
        except RuntimeError as exc:  # torch's C++ writer: "[enforce fail at inline_container.cc:...] ..."
            raise _write_error(exc, Path(path), _tensor_bytes(payload)) from exc
    return Path(path)


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) payload: about what its file takes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _write_error(exc: RuntimeError, path: Path, needed: int) -> EdgesegError:
    """torch.save's failure as one line: a full disk said so (torch only says "unexpected pos"), else torch's
    first line."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < max(needed, 1 << 20):
        return EdgesegError(f"cannot write {path}: no space left on device ({free / 2**20:.1f} MiB free, about "
                            f"{needed / 2**20:.1f} MiB needed)")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return EdgesegError(f"cannot write {path}: {lines[0] if lines else type(exc).__name__}")


def _state(model: nn.Module, compact: bool) -> dict:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if compact:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()
                 if not k.startswith(AUX_PREFIX)}
    return state


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint (edgeseg format, or a bare state dict such as torchvision's ImageNet weights).

    Returns a dict with at least ``state_dict``; edgeseg checkpoints also carry ``model``, ``kwargs``,
    ``num_classes``, ``extra`` and ``meta`` (a :class:`ModelMeta`). Anything that is not such a file, or an
    edgeseg checkpoint with a malformed entry, is a :class:`CheckpointError`.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    obj = _torch_load(p)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _checked(obj, p)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if _is_state_dict(obj):
        return {"state_dict": obj}
    raise CheckpointError(f"{p} is neither an edgeseg checkpoint nor a state dict")


def _torch_load(p: Path):
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": a second line, not news
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(str(os_error(exc, p, verb="cannot read"))) from exc
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise CheckpointError(f"cannot read checkpoint {p}: it holds pickled Python objects, not only "
                                  f"tensors (a whole pickled model?); edgeseg loads weights only, for safety: "
                                  f"save the model's state_dict instead") from exc
        raise CheckpointError(f"cannot read checkpoint {p}: not a PyTorch checkpoint file (or a truncated or "
                              f"damaged one)") from exc
    except Exception as exc:  # torch raises many types for files that are not checkpoints: KeyError, EOFError,
        # RuntimeError("PytorchStreamReader failed reading zip archive ..."), ...
        raise CheckpointError(f"cannot read checkpoint {p}: not a PyTorch checkpoint file (or a truncated or "
                              f"damaged one)") from exc


def format_1_kwargs(model: str, kwargs: dict) -> dict:
    """The kwargs that rebuild a format-1 checkpoint of ``model`` as it was trained: the defaults it was saved
    under, where it did not set them (format 1's basic context module had 8 layers)."""
    old = {**FORMAT_1_DEFAULTS.get(model, {}), **kwargs}
    if model == "dilated_context" and old.get("context") == "basic":
        old.setdefault("context_layers", 8)
    return old


def _is_state_dict(obj) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _checked(obj: dict, p: Path) -> dict:
    """An edgeseg checkpoint's entries, checked: a malformed one is one line naming it."""
    version = obj.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{p}: format_version is not a number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{p} was written by a newer edgeseg (format {version})")
    out = dict(obj)
    out.setdefault("kwargs", {})
    out.setdefault("extra", {})
    if not isinstance(out.get("model"), str) or not out["model"]:
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: no model name")
    if not isinstance(out["kwargs"], dict) or not all(isinstance(k, str) for k in out["kwargs"]):
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: kwargs is not a mapping of option names")
    if version < 2:
        out["kwargs"] = format_1_kwargs(out["model"], out["kwargs"])
    if not isinstance(out["extra"], dict):
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: extra is not a mapping")
    if not _is_state_dict(out.get("state_dict")):
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: state_dict is not a mapping of tensors")
    if "meta" not in obj:
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: no meta (classes, palette, preprocessing)")
    try:
        out["meta"] = ModelMeta.from_dict(obj["meta"])
    except EdgesegError as exc:
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: {exc}") from None
    num_classes = out.get("num_classes")
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes != out["meta"].num_classes):
        raise CheckpointError(f"{p}: damaged edgeseg checkpoint: num_classes is {num_classes!r}, its meta lists "
                              f"{out['meta'].num_classes} classes")
    return out


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
