"""Datasets behind one spec string, shared by every command (no torch import here).

Specs: ``cityscapes:/path``, ``camvid:/path``, ``voc:/path``, ``ade20k:/path``, ``folder:IMAGES,LABELS[,CLASSES]``,
``synthetic`` or ``synthetic:N`` (N training scenes; val is always the same 100 scenes). A file-based spec may end
with ``,depth=DIR``: depth maps paired by file stem, for RGB-D models (the synthetic scenes have their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.data.base import FilePairSource, SegmentationSource, read_image, read_label
from edgeseg.errors import EdgesegError

KINDS = ("cityscapes", "camvid", "voc", "ade20k", "folder", "synthetic")


@dataclass(frozen=True)
class DataSpec:
    kind: str
    paths: tuple[Path, ...] = ()
    count: int | None = None
    depth: Path | None = None

    def __str__(self) -> str:
        if self.kind == "synthetic":
            return "synthetic" + (f":{self.count}" if self.count else "")
        return f"{self.kind}:{','.join(map(str, self.paths))}" + (f",depth={self.depth}" if self.depth else "")


def is_data_spec(text: str) -> bool:
    """Whether ``text`` names a dataset (``kind:...`` or ``synthetic``), as opposed to a folder or a file."""
    kind, sep, _ = text.partition(":")
    return kind.strip().lower() in KINDS and (bool(sep) or kind.strip().lower() == "synthetic")


def parse_spec(text: str) -> DataSpec:
    """Parse a data spec string; a malformed one raises :class:`EdgesegError` listing the forms."""
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    forms = "cityscapes:/path, camvid:/path, voc:/path, ade20k:/path, folder:IMAGES,LABELS, synthetic[:N]"
    if kind not in KINDS:
        raise EdgesegError(f"unknown data spec {text!r}; expected one of {forms}")
    if kind == "synthetic":
        if not rest:
            return DataSpec(kind)
        if not rest.isdigit() or int(rest) < 1:
            raise EdgesegError(f"synthetic:N needs a positive number of scenes, got {rest!r}")
        return DataSpec(kind, count=int(rest))
    if not rest:
        raise EdgesegError(f"data spec {text!r} needs a path, e.g. {kind}:/data/{kind}")
    parts = rest.split(",")
    depth = [p[len("depth="):] for p in parts if p.startswith("depth=")]
    paths = tuple(Path(p).expanduser() for p in parts if not p.startswith("depth="))
    comma = " (commas separate the paths of a data spec: a folder whose name has a comma needs a link without one)"
    if kind == "folder" and len(paths) not in (2, 3):
        hint = comma if len(paths) > 3 else ""
        raise EdgesegError(f"folder spec needs IMAGES,LABELS[,CLASSES], got {rest!r}{hint}")
    if kind != "folder" and len(paths) != 1:
        raise EdgesegError(f"{kind} spec takes one path, got {rest!r}{comma}")
    return DataSpec(kind, paths, depth=Path(depth[-1]).expanduser() if depth else None)


def open_dataset(spec: str | DataSpec, split: str = "train") -> SegmentationSource:
    """Open one split of the dataset a spec names."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    source = _open(spec, split)
    if spec.depth is not None:
        if not spec.depth.is_dir():
            raise EdgesegError(f"depth folder {spec.depth} not found")
        source.depth_dir = spec.depth
    return source


def _open(spec: DataSpec, split: str) -> SegmentationSource:
    if spec.kind == "synthetic":
        from edgeseg.data.synthetic_source import SyntheticSource

        return SyntheticSource(split, spec.count if split == "train" else None)
    if spec.kind == "folder":
        from edgeseg.data.folder import open_folder

        return open_folder(*spec.paths)
    root = spec.paths[0]
    if not root.is_dir():
        raise EdgesegError(f"{spec.kind}: dataset root {root} not found")
    if spec.kind == "cityscapes":
        from edgeseg.data.cityscapes import open_cityscapes as opener
    elif spec.kind == "camvid":
        from edgeseg.data.camvid import open_camvid as opener
    elif spec.kind == "voc":
        from edgeseg.data.voc import open_voc as opener
    else:
        from edgeseg.data.ade20k import open_ade20k as opener
    return opener(root, split)


__all__ = ["DataSpec", "FilePairSource", "SegmentationSource", "is_data_spec", "open_dataset", "parse_spec",
           "read_image", "read_label"]
