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
from edgeseg.fileio import FolderKind, inside, read_json_document, write_text_atomic

# The deploy graph's tensor names: every writer and reader of a bundle takes them from here.
INPUT_NAME = "image"  # uint8 N×H×W×3 RGB
DEPTH_INPUT = "depth"  # float32 N×H×W metres, the second input of RGB-D models
LABELS, LOGITS, PROBS = "labels", "logits", "probs"
OUTPUTS = (LABELS, LOGITS, PROBS)

MANIFEST = "manifest.json"
FORMAT = "edgeseg-bundle"
FORMAT_VERSION = 1
# What edgeseg may replace as a bundle: a folder whose manifest lists every file in it.
BUNDLE_KIND = FolderKind(MANIFEST, FORMAT, "edgeseg bundle", lambda manifest: manifest.get("files") or {})


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
    def batch(self) -> int | str:
        """The static batch size, or ``"batch"`` for a dynamic one."""
        spec = self.manifest["input"]
        return spec["batch"] if "batch" in spec else spec.get("shape", [1])[0]

    @property
    def resize_mode(self) -> str:
        """How frames are fitted to the deploy size (see :mod:`edgeseg.data.geometry`); ``stretch`` for bundles
        written before the mode was recorded."""
        return self.manifest["input"].get("resize", "stretch")

    @property
    def input_names(self) -> tuple[str, ...]:
        """``("image",)``, or ``("image", "depth")`` for an RGB-D model."""
        return tuple(spec["name"] for spec in self.manifest.get("inputs", [self.manifest["input"]]))

    @property
    def takes_depth(self) -> bool:
        """An RGB-D model: its graph has a ``depth`` input besides the image."""
        return takes_depth(self.input_names)

    def entry(self, name: str) -> dict:
        if name not in self.files:
            raise EdgesegError(f"{self.root}: the manifest lists no file {name!r} "
                               f"(it has {', '.join(sorted(self.files)) or 'none'})")
        return self.files[name]

    def path(self, name: str, verify: bool = True) -> Path:
        """Path of file ``name``; with ``verify`` its size and sha256 must match the manifest."""
        entry = self.entry(name)
        p = inside(self.root, name, f"{self.root / MANIFEST}")
        if not p.is_file():
            raise EdgesegError(f"{p} is listed in {MANIFEST} but missing")
        if verify and (p.stat().st_size != entry.get("bytes") or sha256_file(p) != entry.get("sha256")):
            raise EdgesegError(f"{p} does not match its sha256 in {MANIFEST}: the file changed after export; "
                               f"re-export the bundle")
        return p

    def find(self, kind: str, precision: str = "fp32") -> str | None:
        """Name of the file of ``kind`` (onnx, engine, ...) and ``precision``, if the bundle has one."""
        return find_file(self.files, kind, precision)

    def add_file(self, name: str, kind: str, **info) -> dict:
        p = inside(self.root, name, f"{self.root / MANIFEST}")
        entry = {"kind": kind, "bytes": p.stat().st_size, "sha256": sha256_file(p), **info}
        self.files[name] = entry
        return entry

    def save(self) -> None:
        """Write ``manifest.json`` (atomically), checked as a reader will check it."""
        self.manifest["format"], self.manifest["format_version"] = FORMAT, FORMAT_VERSION
        check_manifest(self.manifest, self.root / MANIFEST)
        write_text_atomic(self.root / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")


def takes_depth(input_names) -> bool:
    """Whether a graph with these input names is an RGB-D model (it takes ``depth`` besides the image): the one
    place that asks."""
    return DEPTH_INPUT in tuple(input_names)


def find_file(files: dict, kind: str, precision: str = "fp32") -> str | None:
    """The first (by name) of ``files`` (a manifest's file list) of ``kind`` and ``precision``, or None."""
    return next((name for name, entry in sorted(files.items())
                 if entry.get("kind") == kind and entry.get("precision", "fp32") == precision), None)


def tensor_specs(input_names: tuple[str, ...], outputs: tuple[str, ...], batch: int | str, size: tuple[int, int],
                 num_classes: int) -> tuple[list[dict], list[dict]]:
    """The manifest's ``inputs`` and ``outputs``: each tensor's name, dtype, layout and shape, the one place
    that says what the deploy graph takes and returns."""
    h, w = size
    inputs = [{"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "color": "RGB", "shape": [batch, h, w, 3]}]
    if DEPTH_INPUT in input_names:
        inputs.append({"name": DEPTH_INPUT, "dtype": "float32", "layout": "NHW", "unit": "metres",
                       "shape": [batch, h, w]})
    specs = [{"name": o, "dtype": "uint8" if o == LABELS else "float32",
              "shape": [batch, h, w] if o == LABELS else [batch, num_classes, h, w]} for o in outputs]
    return inputs, specs


def is_bundle(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / MANIFEST).is_file() if p.is_dir() else (p.parent / MANIFEST).is_file()


def open_bundle(path: str | os.PathLike) -> Bundle:
    """Open a bundle folder (or the folder of a file inside one); its manifest is checked before use."""
    p = Path(path)
    if not p.exists():
        raise EdgesegError(f"{path}: no such bundle folder")
    root = p if p.is_dir() else p.parent
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        where = f"{path} is not a bundle folder" if p.is_dir() else f"{path} is not inside a bundle folder"
        raise EdgesegError(f"{where}: no {MANIFEST} (write one with edgeseg export)")
    manifest = read_json_document(manifest_path, FORMAT, FORMAT_VERSION, "edgeseg bundle manifest")
    check_manifest(manifest, manifest_path)
    return Bundle(root, manifest)


def check_manifest(manifest: dict, where: str | os.PathLike) -> None:
    """The parts of a manifest every command relies on, with their types; file names must stay in the bundle."""
    from edgeseg.data.geometry import RESIZE_MODES

    def bad(what: str) -> EdgesegError:
        return EdgesegError(f"{where}: {what}; re-export the bundle")

    model, spec, files = manifest.get("model"), manifest.get("input"), manifest.get("files")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise bad("no model name")
    classes = model.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("model.classes must be a list of class names")
    palette = model.get("palette")
    if palette is not None and not (isinstance(palette, list) and all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette)):
        raise bad("model.palette must be a list of [R, G, B] colours (0-255)")
    if not isinstance(spec, dict):
        raise bad("no input size")
    size = spec.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise bad("no input size")
    if spec.get("resize", "stretch") not in RESIZE_MODES:
        raise bad(f"input.resize must be one of {', '.join(RESIZE_MODES)}")
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise bad("no file list")
    for name in files:
        inside(Path(where).parent, name, str(where))
