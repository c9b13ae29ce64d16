"""``edgeseg import``: published checkpoints (CoinCheung's BiSeNet, the authors' TorchSeg / LEDNet / DANet /
ACNet, torchvision's DeepLabV3, DeepLab-LargeFOV) as ordinary edgeseg checkpoints that compute what the
reference computes.

:func:`import_checkpoint` reads the file (:mod:`.reading`), checks it is the named format (:mod:`.formats`),
renames its keys onto the edgeseg model with the options that reproduce the reference (:mod:`.keymap` and the
per-family key maps), and writes an edgeseg checkpoint with the source's classes, palette, normalisation and
deploy size, so ``export``, ``eval``, ``bench`` and ``run`` take it unchanged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeseg.data.labelsets import LABEL_SETS, label_set
from edgeseg.errors import CheckpointError, EdgesegError
from edgeseg.fileio import check_file_target
from edgeseg.meta import ModelMeta, default_classes, default_palette
from edgeseg.models.importers.formats import FORMATS, Format, get_format, identify, matches
from edgeseg.models.importers.keymap import check_fit
from edgeseg.models.importers.reading import read_state_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the checkpoint, the model it holds, its label set and the reference keys left out."""

    path: Path
    format: str
    model: str
    kwargs: dict
    meta: ModelMeta
    unused_keys: tuple[str, ...]
    dataset: str | None


def convert(fmt: Format | str, state: dict[str, torch.Tensor], num_classes: int, source: str = "checkpoint"
            ) -> tuple[nn.Module, list[str]]:
    """Build ``fmt``'s edgeseg model and load the reference-keyed ``state`` into it: ``(model in eval mode,
    reference keys left out as unused)``. Keys that do not fit raise :class:`CheckpointError` (one line)."""
    from edgeseg.models import create

    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    model = create(fmt.model, num_classes=num_classes, **fmt.kwargs)
    renamed, unused = fmt.keymap.apply(state)
    check_fit(model, renamed, fmt.keymap, f"{source} does not fit {fmt.name} ({fmt.model})")
    model.load_state_dict(renamed, strict=False)  # strict minus the optional aux heads, checked above
    return model.eval(), unused


def check_format(fmt: Format, state: dict, source: str) -> None:
    """Refuse a file that is not ``fmt``: name the format it is when it is a known one."""
    if matches(fmt, state.keys()):
        return
    others = identify(state.keys())
    if others:
        raise CheckpointError(f"{source} is a {others[0]} checkpoint, not {fmt.name}: run edgeseg import {others[0]} "
                              f"{source} ...")
    lacking = [k for k in fmt.signature if k not in state]
    why = f"no {lacking[0]}" if lacking else f"it has {next(k for k in fmt.absent if k in state)}"
    sample = ", ".join(list(state)[:2])
    raise CheckpointError(f"{source} is not a {fmt.name} checkpoint ({why}; its keys start {sample}); "
                          f"formats: edgeseg import --list")


def file_classes(fmt: Format, state: dict, source: str) -> int:
    """The class count of the file's classifier."""
    weight = state.get(fmt.classifier)
    if weight is None or weight.dim() < 1:
        raise CheckpointError(f"{source} has no classifier {fmt.classifier}: not a complete {fmt.name} checkpoint")
    return int(weight.shape[0])


def resolve_labels(fmt: Format, n_file: int, dataset: str | None, num_classes: int | None
                   ) -> tuple[str | None, list[str], list[tuple[int, int, int]]]:
    """``(dataset, classes, palette)`` for a file with ``n_file`` classes.

    ``dataset`` names the label set (its class count must be the file's); without it, the format's datasets are
    tried by class count, default first. ``num_classes`` must equal the file's; with no label set of that
    count it gives generic names (``class_0`` ...): a model fine-tuned on one's own classes.
    """
    if num_classes is not None and num_classes != n_file:
        raise EdgesegError(f"--num-classes {num_classes} but the checkpoint's classifier has {n_file} classes")
    if dataset is not None:
        labels = label_set(dataset)
        if labels.num_classes != n_file:
            raise EdgesegError(f"the checkpoint's classifier has {n_file} classes, {dataset} has "
                               f"{labels.num_classes}; name the dataset it was trained on, or give "
                               f"--num-classes {n_file} for generic class names")
        return dataset, list(labels.classes), list(labels.palette)
    for name in (fmt.dataset, *fmt.datasets):
        if LABEL_SETS[name].num_classes == n_file:
            return name, list(LABEL_SETS[name].classes), list(LABEL_SETS[name].palette)
    if num_classes is None:
        raise EdgesegError(f"the checkpoint's classifier has {n_file} classes, which none of {fmt.name}'s datasets "
                           f"({', '.join(fmt.datasets)}) has; give --dataset NAME, or --num-classes {n_file} for "
                           f"generic class names")
    return None, default_classes(n_file), default_palette(n_file)


def import_checkpoint(fmt_name: str, path: str | os.PathLike, out: str | os.PathLike, *,
                      dataset: str | None = None, num_classes: int | None = None) -> ImportResult:
    """Convert the published checkpoint ``path`` of format ``fmt_name`` into the edgeseg checkpoint ``out``."""
    from edgeseg.models import save_checkpoint

    fmt = get_format(fmt_name)
    if dataset is not None:
        label_set(dataset)  # an unknown name, before reading anything
    source = str(path)
    out = check_file_target(out, inputs=[path])
    state = read_state_dict(path)
    check_format(fmt, state, source)
    n_file = file_classes(fmt, state, source)
    dataset, classes, palette = resolve_labels(fmt, n_file, dataset, num_classes)
    model, unused = convert(fmt, state, n_file, source)
    mean, std = fmt.stats_for(dataset or "*")
    size = fmt.input_sizes.get(dataset) or (LABEL_SETS[dataset].input_size if dataset else LABEL_SETS[fmt.dataset]
                                            .input_size)
    meta = ModelMeta(classes=classes, palette=palette, mean=tuple(mean), std=tuple(std), input_size=tuple(size),
                     extra={"imported": {"format": fmt.name, "source": fmt.source, "file": Path(path).name,
                                         "dataset": dataset}})
    if unused:
        log.info("left out %d keys of heads %s never runs at inference (%s%s)", len(unused), fmt.source,
                 ", ".join(unused[:3]), ", ..." if len(unused) > 3 else "")
    save_checkpoint(out, model, name=fmt.model, kwargs=dict(fmt.kwargs), meta=meta)
    return ImportResult(Path(out), fmt.name, fmt.model, dict(fmt.kwargs), meta, tuple(unused), dataset)


__all__ = ["FORMATS", "Format", "ImportResult", "convert", "get_format", "identify", "import_checkpoint",
           "read_state_dict"]
