"""Renaming a reference implementation's state-dict keys to edgeseg's, and checking the result fits.

A format's key map is an ordered list of ``(pattern, replacement)`` regular-expression substitutions applied
one after another to every key (``re.sub``), plus the patterns of keys to leave out: heads the reference never
runs at inference (auxiliary / booster heads, an encoder-only classifier). The renamed dict must then hold
exactly the model's deploy keys with the model's shapes; anything else is one line naming the first few.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgeseg.errors import CheckpointError
from edgeseg.models.checkpoint import AUX_PREFIX

Rules = Sequence[tuple[str, str]]
SHOWN = 3  # keys listed in a message


@dataclass(frozen=True)
class KeyMap:
    """How one format's keys become edgeseg's: substitutions, keys never used, and an optional last step on
    the renamed tensors (e.g. swapping the first conv's input channels)."""

    rules: Rules
    unused: Sequence[str] = ()
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    compiled: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", (tuple((re.compile(p), r) for p, r in self.rules),
                                              tuple(re.compile(p) for p in self.unused)))

    def is_unused(self, key: str) -> bool:
        return any(p.match(key) for p in self.compiled[1])

    def rename(self, key: str) -> str:
        for pattern, replacement in self.compiled[0]:
            key = pattern.sub(replacement, key)
        return key

    def apply(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """``(renamed state, reference keys left out as unused)``."""
        out: dict[str, torch.Tensor] = {}
        dropped = []
        for key, value in state.items():
            if self.is_unused(key):
                dropped.append(key)
                continue
            out[self.rename(key)] = value
        if self.transform is not None:
            out = self.transform(out)
        return out, dropped


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def check_fit(model: nn.Module, state: dict[str, torch.Tensor], keymap: KeyMap, source: str) -> None:
    """Refuse a renamed state that does not fit ``model`` exactly: missing (deploy graph; the training-only
    ``aux_heads`` may be absent), unexpected and mis-shaped keys are one line listing the first few."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(AUX_PREFIX)]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_listed(unexpected)})")
    if shaped:
        problems.append(f"{len(shaped)} of another shape (" + _listed(
            [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shaped]) + ")")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def sequential(prefix: str, names: Sequence[str]) -> list[tuple[str, str]]:
    """Rules renaming the numbered children of an ``nn.Sequential`` (``prefix.0.``, ``prefix.1.`` ...) to
    ``names``; a regex ``prefix`` may use groups, kept as ``\\1`` ... in ``names``."""
    return [(rf"{prefix}\.{i}\.", f"{name}.") for i, name in enumerate(names)]
