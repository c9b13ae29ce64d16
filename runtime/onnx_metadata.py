"""Self-describing ONNX files: what an edgeseg ONNX file is, stamped into its own ``metadata_props``.

Every ONNX file edgeseg writes into a bundle carries two kinds of entries, so that a copy taken out of the bundle
still says what it is:

``edgeseg``
    A JSON document, ``{"format": "edgeseg-onnx-metadata", "format_version": 1, ...}``: ``producer``; ``model``
    (name, classes, palette, ignore_index: the manifest's record without mean/std); ``graph`` (``model``, the
    deploy graph; ``model+crf``, the deploy graph with the ConvCRF fused after it; ``crf``, the standalone CRF on
    logits and image); ``input`` (the manifest's deploy input: size, batch, resize mode, and for a
    ``--frame-size`` graph the camera frame's size and channel order); ``inputs`` and ``outputs`` (each tensor's
    name, dtype, shape, layout, colour order: the manifest's records); ``normalize`` (``{"mean", "std"}`` the
    graph applies itself, ``(pixel / 255 - mean) / std``, or null when it takes no image to normalise);
    ``precision`` (fp32, fp16, int8) and ``target`` (int8: the runtime its Q/DQ layout is for); and ``parent``:
    ``{"file", "sha256"}`` of the fp32 ONNX model of the bundle this file was written into (the file it was
    derived from, or exported beside), or **null for that fp32 model itself**: a file cannot hold its own hash,
    and the manifest already holds it.
``model_info ...``
    The OpenVINO Model API keys its ``Model.create_model`` reads from an ONNX file to pick and configure a
    wrapper: ``model_type`` ``Segmentation``; ``labels``, the class names joined by spaces (the Model API splits
    the value on whitespace, so whitespace inside a name becomes ``_``, as OpenVINO Training Extensions writes
    them, and an empty name ``_``: label i stays class i); ``embedded_processing`` ``True`` (the graph takes
    uint8 N×H×W×3 pixels and normalises them itself: the Model API must not add its own resize, layout change
    or normalisation, and feeds each image as given, so its caller gives images of the graph's size in its
    channel order, RGB or the ``--frame-size`` graph's frame format); and ``orig_height``, ``orig_width``, the
    image input's size, which the Model API's ImageModel takes as the model's input size when processing is
    embedded. Not written: ``mean_values``, ``scale_values``, ``reverse_input_channels``, ``resize_type`` and
    ``pad_value`` configure the preprocessing the Model API embeds only when ``embedded_processing`` is false;
    ``blur_strength`` and ``soft_threshold`` smooth soft predictions edgeseg does not make (their defaults keep a
    plain ArgMax). The standalone CRF graph (logits in) gets no Model API keys. The Model API's
    SegmentationModel runs graphs with one input and one output, and takes the ArgMax of that output itself: a
    graph whose one output is ``logits`` runs (openvino-model-api 0.4.7 picked the wrapper, the labels and the
    size from these keys alone, and its labels agreed with the graph's own ArgMax); on a ``labels`` output its
    ArgMax fails, and an RGB-D graph or one with several outputs it refuses. They carry the keys all the same.

Writers call one function at the end of writing a file, before it is hashed into the manifest::

    stamp_bundle_file(bundle, "model.fp16.onnx", precision="fp16")  # parent: the bundle's fp32 model
    bundle.add_file("model.fp16.onnx", "onnx", precision="fp16")

and, for a file written outside a bundle (a Triton model repository, a DeepStream folder),
``stamp_onnx(path, manifest, precision, parent_sha256, parent_file=...)``. Stamping rewrites the file's
``metadata_props`` alone (:mod:`edgeseg.runtime.onnx_props`): the graph's bytes do not change, and entries of
other tools are kept. Readers call :func:`read_metadata` (a path, the file's bytes or an ``onnx.ModelProto``):
an :class:`OnnxMetadata`, or None for a file without one. The document is untrusted input: one that is
malformed or of a newer format version is ignored with a warning, never raised. No torch, no onnx here.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg import __version__
from edgeseg.data.geometry import host_resize
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path, inside, os_error
from edgeseg.runtime.backends import PRECISIONS
from edgeseg.runtime.bundle import INPUT_NAME, MANIFEST, Bundle
from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo, TensorSpec
from edgeseg.runtime.onnx_props import PropsError, props_from_bytes, read_props, rewrite_props

log = logging.getLogger(__name__)

KEY = "edgeseg"
FORMAT = "edgeseg-onnx-metadata"
FORMAT_VERSION = 1
MODEL_API = "model_info"  # the Model API reads keys whose space-separated words include this
GRAPHS = ("model", "model+crf", "crf")
MAX_DOCUMENT = 1 << 20  # characters; a class list and palette are a few kB
_SHA256 = re.compile(r"[0-9a-f]{64}")
NO_METADATA = "none (not written by edgeseg, or by one before ONNX files carried it)"


class MetadataError(ValueError):
    """A metadata document that is not what this edgeseg writes (the message says what)."""


def owned_key(key: str) -> bool:
    """A ``metadata_props`` key a stamp replaces: ``edgeseg`` and every Model API key."""
    return key == KEY or MODEL_API in key.split()


def model_api_labels(classes: list[str]) -> str:
    """Class names as the Model API's ``labels`` value: joined by spaces, whitespace inside a name as ``_``."""
    return " ".join(re.sub(r"\s", "_", name) or "_" for name in classes)


def metadata_document(manifest: Manifest, precision: str = "fp32", parent_sha256: str | None = None, *,
                      parent_file: str | None = None, target: str | None = None, graph: str = "model",
                      inputs: list[TensorSpec] | None = None, outputs: list[TensorSpec] | None = None) -> dict:
    """The ``edgeseg`` document of a file of ``manifest``'s model in ``precision``, derived from (or written
    beside) the fp32 model with ``parent_sha256`` (None for that fp32 model itself). ``inputs``/``outputs``
    default to the manifest's deploy graph; a CRF graph (``graph``) passes its own."""
    if precision not in PRECISIONS or graph not in GRAPHS:
        raise EdgesegError(f"cannot stamp a {precision} {graph} graph: precision is one of "
                           f"{', '.join(PRECISIONS)}, graph one of {', '.join(GRAPHS)}")
    model = manifest.model.to_dict()
    mean, std = model.pop("mean", None), model.pop("std", None)
    specs = manifest.inputs if inputs is None else inputs
    takes_image = bool(specs) and specs[0].name == INPUT_NAME
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "producer": f"edgeseg {__version__}",
            "model": model, "graph": graph, "input": manifest.input.to_dict(),
            "inputs": [s.to_dict() for s in specs],
            "outputs": [s.to_dict() for s in (manifest.outputs if outputs is None else outputs)],
            "normalize": {"mean": mean, "std": std} if takes_image and mean is not None and std is not None else None,
            "precision": precision, "target": target,
            "parent": None if parent_sha256 is None else {"file": parent_file, "sha256": parent_sha256}}


def model_api_props(document: dict) -> dict[str, str]:
    """The Model API keys for a document (see the module docstring); none for a graph whose first input is not
    the image (the standalone CRF takes logits)."""
    inputs = document["inputs"]
    if not inputs or inputs[0]["name"] != INPUT_NAME:
        return {}
    _, height, width, _ = inputs[0]["shape"]
    return {f"{MODEL_API} model_type": "Segmentation",
            f"{MODEL_API} labels": model_api_labels(document["model"]["classes"]),
            f"{MODEL_API} embedded_processing": "True",
            f"{MODEL_API} orig_height": str(height), f"{MODEL_API} orig_width": str(width)}


def metadata_props(document: dict) -> dict[str, str]:
    """Every ``metadata_props`` entry a stamp writes for ``document``."""
    return {KEY: json.dumps(document, ensure_ascii=False, separators=(",", ":")), **model_api_props(document)}


def stamp_onnx(path: str | os.PathLike, manifest: Manifest, precision: str = "fp32",
               parent_sha256: str | None = None, **options: Any) -> dict:
    """Write the metadata of ``manifest``'s model in ``precision`` into the ONNX file at ``path`` (atomically;
    only ``metadata_props`` changes). ``options``: those of :func:`metadata_document`. Returns the document."""
    path = Path(path)
    document = metadata_document(manifest, precision, parent_sha256, **options)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise os_error(exc, path, "cannot read") from exc
    try:
        stamped = rewrite_props(data, metadata_props(document), owned_key)
    except PropsError as exc:
        raise EdgesegError(f"{path} is not an ONNX model ({exc}): its metadata cannot be written") from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(stamped)
    return document


def stamp_bundle_file(bundle: Bundle, name: str, *, precision: str = "fp32", target: str | None = None,
                      graph: str = "model", inputs: list[TensorSpec] | None = None,
                      outputs: list[TensorSpec] | None = None) -> dict:
    """Stamp ``name``, an ONNX file just written into ``bundle`` and not yet hashed into its manifest. Its parent
    is the bundle's fp32 ONNX model as the manifest lists it, or null when ``name`` is that model (or no fp32
    model is listed yet: the fp32 model is the first file written)."""
    parent = bundle.find("onnx", "fp32")
    entry = bundle.files[parent] if parent is not None and parent != name else None
    return stamp_onnx(inside(bundle.root, name, str(bundle.root / MANIFEST)), bundle.manifest, precision,
                      entry.sha256 if entry is not None else None, parent_file=parent if entry is not None else None,
                      target=target, graph=graph, inputs=inputs, outputs=outputs)


@dataclass
class OnnxMetadata:
    """An ONNX file's ``edgeseg`` document, checked; ``model_api`` holds its Model API keys as written."""

    document: dict
    model: ModelInfo
    input: InputSpec
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str
    graph: str = "model"
    target: str | None = None
    parent_file: str | None = None
    parent_sha256: str | None = None
    model_api: dict[str, str] = field(default_factory=dict)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the camera frame a ``--frame-size`` graph takes, else None."""
        return self.input.frame

    @property
    def resize_mode(self) -> str:
        return self.input.resize

    @property
    def host_resize(self) -> str:
        """How host code fits images of another size to the graph's input (as :attr:`Bundle.host_resize`)."""
        return host_resize(self.input.resize, self.input.frame is not None)

    @property
    def frame_bgr(self) -> bool:
        """The graph takes BGR frames: host code feeding it RGB images flips them."""
        return self.input.frame is not None and self.input.frame_format == "bgr"

    def to_dict(self) -> dict:
        """The document as written, with the Model API keys under ``model_api`` (``model_info`` dropped)."""
        return {**self.document, "model_api": {" ".join(k.split()[1:]): v for k, v in self.model_api.items()}}

    def summary(self) -> str:
        """One line: model, classes, precision, the image input and the parent."""
        precision = f"{self.precision} ({self.target})" if self.target else self.precision
        spec = self.inputs[0] if self.inputs else None
        tensor = f"{spec.name} {spec.dtype} {'x'.join(map(str, spec.shape))}" if spec else "no inputs"
        h, w = self.input.size
        fit = f"{h}x{w} {self.input.resize}"
        if self.input.frame is not None:
            fit += f", {self.input.frame[0]}x{self.input.frame[1]} {self.input.frame_format} frames"
        parent = (f"parent {self.parent_file} sha256 {self.parent_sha256[:12]}" if self.parent_sha256
                  else "no parent (the bundle's fp32 model)")
        graph = "" if self.graph == "model" else f" {self.graph}"
        return (f"{self.model.name}{graph}, {self.model.num_classes} classes, {precision}, {tensor} ({fit}), "
                f"{parent}")


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise MetadataError(what)


def parse_document(document: Any, model_api: dict[str, str] | None = None) -> OnnxMetadata:
    """A checked :class:`OnnxMetadata` from a parsed ``edgeseg`` document; raises :class:`MetadataError` (or
    the manifest records' :class:`~edgeseg.runtime.manifest.ManifestError`) naming what is wrong."""
    _need(isinstance(document, dict) and document.get("format") == FORMAT, f"not an {FORMAT} document")
    version = document.get("format_version")
    _need(isinstance(version, int) and not isinstance(version, bool) and version >= 1,
          "format_version is not a positive whole number")
    _need(version <= FORMAT_VERSION, f"format version {version} is newer than this edgeseg reads "
                                     f"({FORMAT_VERSION}): written by a newer edgeseg")
    for key, kind in (("model", dict), ("input", dict), ("inputs", list), ("outputs", list)):
        _need(isinstance(document.get(key), kind), f"{key} is not a JSON {'object' if kind is dict else 'list'}")
    normalize = document.get("normalize")
    _need(normalize is None or isinstance(normalize, dict), "normalize is not an object")
    model = ModelInfo.from_dict({**document["model"], **{k: v for k, v in (normalize or {}).items()
                                                          if k in ("mean", "std")}})
    spec = InputSpec.from_dict(document["input"])
    inputs = [TensorSpec.from_dict(s) for s in document["inputs"]]
    outputs = [TensorSpec.from_dict(s) for s in document["outputs"]]
    graph = document.get("graph", "model")
    _need(graph in GRAPHS, f"graph is not one of {', '.join(GRAPHS)}")
    if graph != "crf":  # the deploy graph's input: the size and batch the input section states
        Manifest(model=model, input=spec, inputs=inputs, outputs=outputs)
    precision, target = document.get("precision"), document.get("target")
    _need(precision in PRECISIONS, f"precision is not one of {', '.join(PRECISIONS)}")
    _need(target is None or isinstance(target, str), "target is not a string")
    parent = document.get("parent")
    if parent is not None:
        _need(isinstance(parent, dict) and isinstance(parent.get("sha256"), str)
              and _SHA256.fullmatch(parent["sha256"]) is not None, "parent.sha256 is not a sha256")
        _need(parent.get("file") is None or isinstance(parent["file"], str), "parent.file is not a file name")
    return OnnxMetadata(document, model, spec, inputs, outputs, precision, graph, target,
                        parent["file"] if parent else None, parent["sha256"] if parent else None,
                        dict(model_api or {}))


def _props(source: Any) -> dict[str, str]:
    if hasattr(source, "metadata_props"):  # an onnx.ModelProto
        return {p.key: p.value for p in source.metadata_props}
    if isinstance(source, (bytes, bytearray, memoryview)):
        return props_from_bytes(source)
    return read_props(source)


def read_metadata(source: Any, name: str | None = None) -> OnnxMetadata | None:
    """The metadata of an ONNX file (a path, its bytes, or an ``onnx.ModelProto``), or None when it has none.
    A document that is malformed or from a newer edgeseg is ignored with a warning naming the file (``name``,
    else the path); a file that is not ONNX at all reads as none (loading it will say why, once)."""
    where = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the ONNX model")
    try:
        props = _props(source)
    except (PropsError, OSError) as exc:
        log.debug("%s: no metadata read (%s)", where, exc)
        return None
    text = props.get(KEY)
    if text is None:
        return None
    model_api = {k: v for k, v in props.items() if k != KEY and owned_key(k)}
    try:
        _need(len(text) <= MAX_DOCUMENT, f"{len(text)} characters, over {MAX_DOCUMENT}")
        return parse_document(json.loads(text), model_api)
    except (ValueError, TypeError, KeyError, RecursionError, EdgesegError) as exc:
        log.warning("%s: its edgeseg metadata is ignored: %s", where, exc)
        return None


__all__ = ["FORMAT", "FORMAT_VERSION", "KEY", "NO_METADATA", "MetadataError", "OnnxMetadata", "metadata_document",
           "metadata_props", "model_api_labels", "model_api_props", "owned_key", "parse_document", "read_metadata",
           "stamp_bundle_file", "stamp_onnx"]
