"""The bundle directory: ``manifest.json`` plus the model files it describes, with their sha256.

No torch and no onnx here: a Jetson reads bundles with the standard library. Every file a command takes from
a bundle is checked against the manifest's hash first, so a stale or swapped file is refused, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgeseg.data.geometry import host_resize
from edgeseg.errors import EdgesegError
from edgeseg.fileio import FolderKind, inside, read_json_document, write_text_atomic
from edgeseg.runtime.manifest import FORMAT, FORMAT_VERSION, EngineRecord, FileEntry, Manifest, ModelInfo, TensorSpec

# The deploy graph's tensor names: every writer and reader of a bundle takes them from here.
INPUT_NAME = "image"  # uint8 N×H×W×3 RGB (or the camera frame, RGB or BGR, with ``input.frame``)
DEPTH_INPUT = "depth"  # float32 N×H×W metres, the second input of RGB-D models
LABELS, LOGITS, PROBS = "labels", "logits", "probs"
OVERLAY, COLOR = "overlay", "color"  # uint8 N×H×W×3 pictures in the frame's channel order (in-graph palette)
OUTPUTS = (LABELS, LOGITS, PROBS, OVERLAY, COLOR)
PICTURES = (OVERLAY, COLOR)
ARGMAX_AT = ("output", "logits")  # where the deploy graph takes the ArgMax (see edgeseg.models.deploy)

MANIFEST = "manifest.json"
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
    """An opened bundle: its folder and typed :class:`Manifest`. ``path(name)`` gives a verified path."""

    root: Path
    manifest: Manifest

    @property
    def files(self) -> dict[str, FileEntry]:
        return self.manifest.files

    @property
    def model(self) -> ModelInfo:
        return self.manifest.model

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.input.size

    @property
    def batch(self) -> int | str:
        """The static batch size, or ``"batch"`` for a dynamic one."""
        return self.manifest.input.batch

    @property
    def resize_mode(self) -> str:
        """How frames are fitted to the deploy size (see :mod:`edgeseg.data.geometry`)."""
        return self.manifest.input.resize

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the camera frame the graph takes (``--frame-size``), or None for a deploy-size input."""
        return self.manifest.input.frame

    @property
    def feed_size(self) -> tuple[int, int]:
        """(H, W) of the image input: the frame size, else the deploy size."""
        return self.manifest.input.feed_size

    @property
    def frame_bgr(self) -> bool:
        """The graph takes BGR frames (``--frame-format bgr``): host code feeding it RGB images flips them."""
        return self.frame_size is not None and self.manifest.input.frame_format == "bgr"

    @property
    def host_resize(self) -> str:
        """How host code fits images of another size to :attr:`feed_size` (see
        :func:`edgeseg.data.geometry.host_resize`)."""
        return host_resize(self.resize_mode, self.frame_size is not None)

    @property
    def input_names(self) -> tuple[str, ...]:
        """``("image",)``, or ``("image", "depth")`` for an RGB-D model."""
        return self.manifest.input_names

    @property
    def takes_depth(self) -> bool:
        """An RGB-D model: its graph has a ``depth`` input besides the image."""
        return takes_depth(self.input_names)

    def entry(self, name: str) -> FileEntry:
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
        if verify and (p.stat().st_size != entry.bytes or sha256_file(p) != entry.sha256):
            raise EdgesegError(f"{p} does not match its sha256 in {MANIFEST}: the file changed after export; "
                               f"re-export the bundle")
        return p

    def find(self, kind: str, precision: str = "fp32") -> str | None:
        """Name of the file of ``kind`` (onnx, engine, ...) and ``precision``, if the bundle has one."""
        return find_file(self.files, kind, precision)

    def add_file(self, name: str, kind: str, *, precision: str | None = None, target: str | None = None,
                 engine: EngineRecord | None = None) -> FileEntry:
        """List file ``name`` (already written inside the bundle) with its size and sha256."""
        p = inside(self.root, name, f"{self.root / MANIFEST}")
        entry = FileEntry(kind, p.stat().st_size, sha256_file(p), precision=precision, target=target, engine=engine)
        self.files[name] = entry
        return entry

    def save(self) -> None:
        """Write ``manifest.json`` (atomically), checked first exactly as a reader will check it."""
        document = self.manifest.to_dict()
        Manifest.from_dict(document, self.root / MANIFEST)
        write_text_atomic(self.root / MANIFEST, json.dumps(document, indent=2) + "\n")


def takes_depth(input_names) -> bool:
    """Whether a graph with these input names is an RGB-D model (it takes ``depth`` besides the image): the one
    place that asks."""
    return DEPTH_INPUT in tuple(input_names)


def find_file(files: dict[str, FileEntry], kind: str, precision: str = "fp32") -> str | None:
    """The first (by name) of ``files`` (a manifest's file list) of ``kind`` and ``precision``, or None."""
    return next((name for name, entry in sorted(files.items())
                 if entry.kind == kind and entry.model_precision == precision), None)


def tensor_specs(input_names: tuple[str, ...], outputs: tuple[str, ...], batch: int | str, size: tuple[int, int],
                 num_classes: int, *, frame: tuple[int, int] | None = None, frame_format: str = "rgb",
                 alpha: float | None = None, argmax_at: str = "output") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The manifest's ``inputs`` and ``outputs``: each tensor's name, dtype, layout and shape, the one place
    that says what the deploy graph takes and returns. With a ``frame`` size the image input, ``labels`` and
    the pictures (``overlay``, ``color``: NHWC in the frame's channel order) are at the frame's size, ``logits``
    and ``probs`` at the deploy ``size``."""
    h, w = size
    fh, fw = frame or size
    color = frame_format.upper()
    inputs = [TensorSpec(INPUT_NAME, "uint8", [batch, fh, fw, 3], layout="NHWC", color=color)]
    if DEPTH_INPUT in input_names:
        inputs.append(TensorSpec(DEPTH_INPUT, "float32", [batch, h, w], layout="NHW", unit="metres"))
    specs = []
    for o in outputs:
        if o == LABELS:
            where = None if argmax_at == "output" else argmax_at
            specs.append(TensorSpec(o, "uint8", [batch, fh, fw], argmax_at=where))
        elif o in PICTURES:
            specs.append(TensorSpec(o, "uint8", [batch, fh, fw, 3], layout="NHWC", color=color,
                                    alpha=alpha if o == OVERLAY else None))
        else:
            specs.append(TensorSpec(o, "float32", [batch, num_classes, h, w]))
    return inputs, specs


def graph_options(manifest: Manifest) -> dict:
    """The deploy graph's pixel-work options as recorded (frame geometry, pictures, where the ArgMax runs): the
    keyword arguments of :class:`edgeseg.models.deploy.DeployModel`, for the torch backend to rebuild it."""
    spec = manifest.input
    overlay = next((s for s in manifest.outputs if s.name in PICTURES), None)
    labels = next((s for s in manifest.outputs if s.name == LABELS), None)
    options: dict = {"argmax_at": (labels.argmax_at if labels is not None else None) or "output"}
    if spec.frame is not None:
        options.update(frame=spec.frame, size=spec.size, resize=spec.resize, frame_format=spec.frame_format)
    if overlay is not None:
        options.update(palette=[list(c) for c in manifest.model.palette],
                       alpha=next((s.alpha for s in manifest.outputs if s.alpha is not None), 0.55))
    return options


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
    document = read_json_document(manifest_path, FORMAT, FORMAT_VERSION, "edgeseg bundle manifest")
    return Bundle(root, Manifest.from_dict(document, manifest_path))
