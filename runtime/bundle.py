"""The bundle directory: ``manifest.json`` plus the model files it describes, with their sha256.

No torch and no onnx here: a Jetson reads bundles with the standard library. Every file a command takes from
a bundle is checked against the manifest's hash first, so a stale or swapped file is refused, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.fileio import read_json_document, write_text_atomic

MANIFEST = "manifest.json"
FORMAT = "edgeseg-bundle"
FORMAT_VERSION = 1


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """An opened bundle: its folder and manifest. ``file(role)`` gives a verified path."""

    root: Path
    manifest: dict = field(default_factory=dict)

    @property
    def files(self) -> dict:
        return self.manifest.setdefault("files", {})

    @property
    def model(self) -> dict:
        return self.manifest.get("model", {})

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.manifest["input"]["size"]
        return int(h), int(w)

    @property
    def input_names(self) -> tuple[str, ...]:
        """``("image",)``, or ``("image", "depth")`` for an RGB-D model."""
        return tuple(spec["name"] for spec in self.manifest.get("inputs", [self.manifest["input"]]))

    @property
    def takes_depth(self) -> bool:
        """An RGB-D model: its graph has a ``depth`` input besides the image."""
        from edgeseg.data.depth import DEPTH_INPUT

        return DEPTH_INPUT in self.input_names

    def entry(self, name: str) -> dict:
        if name not in self.files:
            raise EdgesegError(f"{self.root}: the manifest lists no file {name!r} "
                               f"(it has {', '.join(sorted(self.files)) or 'none'})")
        return self.files[name]

    def path(self, name: str, verify: bool = True) -> Path:
        """Path of file ``name``; with ``verify`` its size and sha256 must match the manifest."""
        entry = self.entry(name)
        p = self.root / name
        if not p.is_file():
            raise EdgesegError(f"{p} is listed in {MANIFEST} but missing")
        if verify and (p.stat().st_size != entry.get("bytes") or sha256_file(p) != entry.get("sha256")):
            raise EdgesegError(f"{p} does not match its sha256 in {MANIFEST}: the file changed after export; "
                               f"re-export the bundle")
        return p

    def find(self, kind: str, precision: str = "fp32") -> str | None:
        """Name of the file of ``kind`` (onnx, engine, ...) and ``precision``, if the bundle has one."""
        for name, entry in sorted(self.files.items()):
            if entry.get("kind") == kind and entry.get("precision", "fp32") == precision:
                return name
        return None

    def add_file(self, name: str, kind: str, **info) -> dict:
        p = self.root / name
        entry = {"kind": kind, "bytes": p.stat().st_size, "sha256": sha256_file(p), **info}
        self.files[name] = entry
        return entry

    def save(self) -> None:
        self.manifest["format"], self.manifest["format_version"] = FORMAT, FORMAT_VERSION
        write_text_atomic(self.root / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")


def is_bundle(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / MANIFEST).is_file() if p.is_dir() else (p.parent / MANIFEST).is_file()


def open_bundle(path: str | os.PathLike) -> Bundle:
    """Open a bundle folder (or the folder of a file inside one)."""
    p = Path(path)
    root = p if p.is_dir() else p.parent
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise EdgesegError(f"{root} is not a bundle: no {MANIFEST}")
    return Bundle(root, read_json_document(manifest_path, FORMAT, FORMAT_VERSION, "edgeseg bundle manifest"))
