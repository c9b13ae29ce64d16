"""A flat model registry in the torchvision / timm style: ``@register_model`` on small keyword-only builders."""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from edgeseg.errors import EdgesegError, UnknownModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model besides how to build it."""

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    input_size: tuple[int, int]
    family: str
    realtime: bool = False
    # Published figures the implementation is checked against (deploy graph, 19 classes): a parameter count,
    # and/or FLOPs (multiply-adds, as papers count them) at an input size; and where they come from.
    reference_params: float | None = None
    reference_flops: tuple[float, tuple[int, int]] | None = None
    reference_source: str = ""
    size_divisor: int = 32  # input sides must be multiples of this (the deepest stride) to export
    default_kwargs: dict = field(default_factory=dict)
    # Bytes of an attention matrix that grows as (H·W)² (DANet's PAM) at a deploy size and batch, if any.
    attention_bytes: Callable[..., int] | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, paper: str, input_size: tuple[int, int], family: str, realtime: bool = False,
                   reference_params: float | None = None,
                   reference_flops: tuple[float, tuple[int, int]] | None = None, reference_source: str = "",
                   size_divisor: int = 32, name: str | None = None,
                   attention_bytes: Callable[..., int] | None = None, **default_kwargs):
    """Decorator registering a builder ``fn(*, num_classes, **kwargs) -> nn.Module`` under ``name``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or builder.__name__
        if model_name in _REGISTRY:
            raise ValueError(f"model {model_name!r} is already registered")
        _REGISTRY[model_name] = ModelInfo(model_name, builder, paper, tuple(input_size), family, realtime,
                                          reference_params, reference_flops, reference_source, size_divisor,
                                          dict(default_kwargs), attention_bytes)
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, real-time models first, then alphabetical."""
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=lambda n: (not _REGISTRY[n].realtime, n))


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name raises listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; valid models: {', '.join(list_models())}") from None


def model_options(name: str) -> list[str] | None:
    """The keyword options model ``name`` takes (its builder's and its class's), or None when they cannot be
    listed (a builder or class that takes any ``**kwargs`` it does not pass on to a known class)."""
    builder = model_info(name).builder
    names: set[str] = set()
    try:
        targets = [builder, typing.get_type_hints(builder).get("return")]
    except Exception:  # an annotation that does not resolve: no list, the build itself still checks
        return None
    for target in targets:
        if target is None:
            return None
        params = inspect.signature(target.__init__ if inspect.isclass(target) else target).parameters.values()
        for param in params:
            if param.kind is param.VAR_KEYWORD:
                if target is builder:
                    continue  # a builder passes **kwargs on to its class, checked next
                return None
            if param.name not in ("self", "num_classes") and param.kind is not param.VAR_POSITIONAL:
                names.add(param.name)
    return sorted(names)


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """Refuse, before anything is built, a keyword option model ``name`` does not have."""
    options = model_options(name)
    if options is None:
        return
    unknown = [key for key in kwargs if key not in options]
    if unknown:
        raise EdgesegError(f"model {name!r} has no option {unknown[0]!r} (model_kwargs); its options: "
                           f"{', '.join(options) or 'none'}")


def build(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Build a model with random weights (no checkpoint handling; see :func:`edgeseg.models.create`).

    ``kwargs`` are the user's options: one the model does not take, or a value it refuses, raises
    :class:`EdgesegError` naming the model and the option."""
    info = model_info(name)
    merged = {**info.default_kwargs, **kwargs}
    if not kwargs:
        return info.builder(num_classes=num_classes, **merged)
    check_model_kwargs(name, kwargs)
    try:
        return info.builder(num_classes=num_classes, **merged)
    except TypeError as exc:
        m = re.search(r"(?:unexpected keyword argument|multiple values for (?:keyword )?argument) '(\w+)'", str(exc))
        if m and m.group(1) in kwargs:
            raise EdgesegError(f"model {name!r} does not take the option {m.group(1)!r} (model_kwargs)") from exc
        raise EdgesegError(f"model {name!r} cannot be built with model_kwargs {kwargs}: {exc}") from exc
    except (ValueError, KeyError, AssertionError) as exc:
        raise EdgesegError(f"model {name!r} cannot be built with model_kwargs {kwargs}: {exc}") from exc
