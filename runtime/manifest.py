"""The bundle's ``manifest.json`` as typed records: what every command reads from a bundle and every writer puts in.

Each record checks itself when it is built, so a manifest is validated on read (:meth:`Manifest.from_dict`) and
on write (:meth:`Manifest.to_dict` rebuilds it from its parts); a bad value names its field. The sections only
people read (ONNX export facts, verification, lint, versions, variants, gate) stay JSON objects.

Format 2 stores the deploy input as ``{"size", "batch", "resize"}``, plus ``"frame": [H, W]`` and
``"frame_format"`` when the graph takes the camera frame and maps it to the deploy size itself; format 1
(``{"name", "shape", "size"}``) is read and written back as format 2. No torch, no onnx: the runtime reads
bundles with the standard library.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeseg.data.geometry import MAX_SIDE, RESIZE_MODES
from edgeseg.errors import EdgesegError
from edgeseg.fileio import inside

FORMAT = "edgeseg-bundle"
FORMAT_VERSION = 2
DYNAMIC_BATCH = "batch"  # the batch dimension's name in a dynamic-batch graph
ENGINE_KINDS = ("engine", "crf-engine")
FRAME_FORMATS = ("rgb", "bgr")  # channel orders a frame-size graph takes (input.frame_format)
_REPORT_SECTIONS = ("source", "onnx", "verification", "lint", "versions", "variants", "gate")


class ManifestError(EdgesegError):
    """A manifest field that is missing or of the wrong type (the message names it)."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ManifestError(what)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_list(value: Any, length: int | None = None) -> bool:
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _known(cls: type, data: dict, where: str) -> dict:
    """The keys of ``data`` that are fields of record ``cls``; an object with every required field is required."""
    _need(isinstance(data, dict), f"{where} must be an object")
    missing = [f.name for f in fields(cls) if f.name not in data
               and f.default is MISSING and f.default_factory is MISSING]
    _need(not missing, f"{where} has no {', '.join(missing)}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class ModelInfo:
    """The model the bundle holds: its registry name, classes, colours and normalisation."""

    name: str
    classes: list[str]
    palette: list[list[int]] = field(default_factory=list)
    mean: list[float] | None = None
    std: list[float] | None = None
    ignore_index: int | None = None
    paper: str | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and bool(self.name), "no model name")
        _need(isinstance(self.classes, list) and bool(self.classes) and all(isinstance(c, str) for c in self.classes),
              "model.classes must be a list of class names")
        _need(isinstance(self.palette, list) and all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)
            for c in self.palette), "model.palette must be a list of [R, G, B] colours (0-255)")
        for key in ("mean", "std"):
            value = getattr(self, key)
            _need(value is None or _number_list(value, 3), f"model.{key} must be three numbers")
        _need(self.ignore_index is None or _is_int(self.ignore_index), "model.ignore_index must be an integer")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        return cls(**_known(cls, data, "model"))

    def to_dict(self) -> dict:
        return _drop_none({"name": self.name, "num_classes": self.num_classes, "classes": self.classes,
                           "palette": self.palette, "mean": self.mean, "std": self.std,
                           "ignore_index": self.ignore_index, "paper": self.paper})


def _side_pair(value: Any) -> tuple[int, int] | None:
    """``[H, W]`` of positive sides up to MAX_SIDE as a tuple, else None."""
    pair = list(value) if isinstance(value, (list, tuple)) else None
    if pair is None or len(pair) != 2 or not all(_is_int(v) and 0 < v <= MAX_SIDE for v in pair):
        return None
    return int(pair[0]), int(pair[1])


@dataclass
class InputSpec:
    """The deploy input: (H, W), the batch (a number, or ``"batch"`` when dynamic) and how frames are fitted.

    ``frame`` (H, W), when set: the graph's image input is the camera frame at that size in ``frame_format``
    (``rgb`` or ``bgr``), mapped to ``size`` inside the graph by ``resize``; labels come back at the frame size.
    Host code then feeds frames of exactly that size, untouched (see :mod:`edgeseg.data.geometry`)."""

    size: tuple[int, int]
    batch: int | str = 1
    resize: str = "stretch"
    frame: tuple[int, int] | None = None
    frame_format: str = "rgb"

    def __post_init__(self) -> None:
        size = _side_pair(self.size)
        _need(size is not None, "no input size")
        self.size = size  # type: ignore[assignment]
        _need(self.batch == DYNAMIC_BATCH or (_is_int(self.batch) and int(self.batch) > 0),
              f"input.batch must be a positive number or {DYNAMIC_BATCH!r}")
        _need(self.resize in RESIZE_MODES, f"input.resize must be one of {', '.join(RESIZE_MODES)}")
        if self.frame is not None:
            frame = _side_pair(self.frame)
            _need(frame is not None, f"input.frame must be [H, W] with sides 1-{MAX_SIDE}")
            self.frame = frame
        _need(self.frame_format in FRAME_FORMATS, f"input.frame_format must be one of {', '.join(FRAME_FORMATS)}")

    @property
    def feed_size(self) -> tuple[int, int]:
        """(H, W) of the image the graph takes: the frame's size, else the deploy size."""
        return self.frame if self.frame is not None else self.size

    @classmethod
    def from_dict(cls, data: Any) -> InputSpec:
        if isinstance(data, dict) and "shape" in data and "batch" not in data:  # format 1: batch in the shape
            shape = data["shape"]
            data = {**data, "batch": shape[0] if isinstance(shape, list) and shape else 1}
        return cls(**_known(cls, data, "input"))

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"size": list(self.size), "batch": self.batch, "resize": self.resize}
        if self.frame is not None:
            data.update(frame=list(self.frame), frame_format=self.frame_format)
        return data


@dataclass
class TensorSpec:
    """One tensor of the deploy graph: name, dtype, shape (``"batch"`` for a dynamic batch) and its meaning."""

    name: str
    dtype: str
    shape: list
    layout: str | None = None
    color: str | None = None
    unit: str | None = None
    alpha: float | None = None  # the overlay output: the palette colour's weight in the blend
    argmax_at: str | None = None  # labels: "logits" when the ArgMax runs at the logits' resolution

    def __post_init__(self) -> None:
        _need(isinstance(self.name, str) and isinstance(self.dtype, str), "a tensor spec needs a name and a dtype")
        _need(isinstance(self.shape, list) and all(_is_int(d) or isinstance(d, str) for d in self.shape),
              f"tensor {self.name}: shape must be a list of sizes")
        _need(self.alpha is None or (isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool)
                                     and 0 <= self.alpha <= 1), f"tensor {self.name}: alpha must be in [0, 1]")
        _need(self.argmax_at in (None, "output", "logits"), f"tensor {self.name}: argmax_at must be output or logits")

    @classmethod
    def from_dict(cls, data: Any) -> TensorSpec:
        return cls(**_known(cls, data, "a tensor spec"))

    def to_dict(self) -> dict:
        return _drop_none({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass
class EngineRecord:
    """How a TensorRT engine was built: what it may run on, and what to rebuild it with."""

    tensorrt: str
    gpu: str
    compute_capability: str
    hardware_compatibility: str = "NONE"
    version_compatible: bool = False
    dla_core: int | None = None
    legacy_calibrator: bool = False
    strongly_typed: bool = True
    built_from: str | None = None
    built_from_sha256: str | None = None
    build_seconds: float | None = None
    opt_level: int | None = None
    layers: str | None = None
    profile: dict | None = None  # dynamic batch: input name -> [min, opt, max] shapes
    dla_layers: list[str] | None = None  # DLA builds: the layers that landed on the DLA core

    def __post_init__(self) -> None:
        _need(all(isinstance(v, str) for v in (self.tensorrt, self.gpu, self.compute_capability)),
              "an engine entry needs tensorrt, gpu and compute_capability")
        _need(self.dla_core is None or _is_int(self.dla_core), "an engine's dla_core must be a number")

    @classmethod
    def from_dict(cls, data: dict) -> EngineRecord:
        return cls(**_known(cls, data, "an engine entry"))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None or f.name not in ("profile", "dla_layers")}


@dataclass
class FileEntry:
    """One file of the bundle: its role (``kind``), size and sha256; model files carry a precision, INT8 ONNX
    files the runtime they were quantized for, engines their :class:`EngineRecord`."""

    kind: str
    bytes: int
    sha256: str
    precision: str | None = None
    target: str | None = None
    engine: EngineRecord | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.kind, str) and _is_int(self.bytes) and isinstance(self.sha256, str),
              "a file entry needs kind, bytes and sha256")

    @property
    def model_precision(self) -> str:
        """The precision a model file runs in (fp32 when the entry names none)."""
        return self.precision or "fp32"

    @classmethod
    def from_dict(cls, data: Any) -> FileEntry:
        known = _known(cls, data, "a file entry")
        known.pop("engine", None)
        engine = EngineRecord.from_dict(data) if data.get("kind") in ENGINE_KINDS else None
        return cls(**known, engine=engine)

    def to_dict(self) -> dict:
        core = _drop_none({"kind": self.kind, "bytes": self.bytes, "sha256": self.sha256,
                           "precision": self.precision, "target": self.target})
        return core | (self.engine.to_dict() if self.engine is not None else {})


@dataclass
class CalibrationIdentity:
    """What a ``calib.cache`` belongs to: the fp32 model, the calibration images and the deploy size;
    ``trt_version`` is the number its header was written with (``100300`` for TensorRT 10.3.0)."""

    onnx_sha256: str
    calibration_sha256: str
    input_size: list[int]
    trt_version: str | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.onnx_sha256, str) and isinstance(self.calibration_sha256, str)
              and _number_list(self.input_size, 2), "calibration.identity is incomplete")

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationIdentity:
        return cls(**_known(cls, data, "calibration.identity"))


@dataclass
class CalibrationRecord:
    """How the INT8 variant was calibrated, and the identity its cache is checked against before reuse."""

    method: str
    images: int
    identity: CalibrationIdentity
    target: str | None = None
    quantizer: str | None = None
    calib_size: int | None = None
    seed: int | None = None
    source: str | None = None
    skipped: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationRecord:
        known = _known(cls, data, "calibration")
        _need("identity" in known and "method" in known and "images" in known, "calibration is incomplete")
        return cls(**{**known, "identity": CalibrationIdentity.from_dict(known["identity"])})

    def to_dict(self) -> dict:
        out = _drop_none({f.name: getattr(self, f.name) for f in fields(self) if f.name != "identity"})
        return out | {"identity": _drop_none(vars(self.identity).copy())}


@dataclass
class CRFSection:
    """The exported ConvCRF: its parameters and the two graphs (standalone on logits + image, and fused)."""

    params: dict
    standalone: str
    fused: str
    inputs: list[str] = field(default_factory=list)
    files: dict = field(default_factory=dict)  # per-graph export facts (node count, label agreement)

    @classmethod
    def from_dict(cls, data: Any) -> CRFSection:
        known = _known(cls, data, "crf")
        _need(isinstance(known.get("params"), dict) and isinstance(known.get("standalone"), str)
              and isinstance(known.get("fused"), str), "crf needs params, standalone and fused")
        return cls(**known)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Manifest:
    """The whole manifest. ``files`` maps a file name (inside the bundle) to its :class:`FileEntry`."""

    model: ModelInfo
    input: InputSpec
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    files: dict[str, FileEntry] = field(default_factory=dict)
    calibration: CalibrationRecord | None = None
    crf: CRFSection | None = None
    reports: dict[str, dict] = field(default_factory=dict)  # the sections people read (_REPORT_SECTIONS)

    def __post_init__(self) -> None:
        h, w = self.input.feed_size
        for spec in self.inputs:  # the deploy input is stated twice (input and its tensor specs): they must agree
            _need(spec.shape[:3] == [self.input.batch, h, w],
                  f"inputs: {spec.name} has shape {spec.shape}, the input section says batch {self.input.batch} "
                  f"at {h}x{w}")
        if self.input.frame is not None and self.inputs:
            _need(self.inputs[0].color == self.input.frame_format.upper(),
                  f"inputs: {self.inputs[0].name} is {self.inputs[0].color}, the input section says frames in "
                  f"{self.input.frame_format}")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs) or ("image",)

    def report(self, section: str) -> dict:
        """A section people read (``gate``, ``variants``, ``verification``, ...), empty when absent."""
        return self.reports.get(section) or {}

    @classmethod
    def from_dict(cls, data: Any, where: str | Path) -> Manifest:
        """Build from parsed JSON; every field is checked and every file name must stay inside ``where``'s
        folder. Raises :class:`ManifestError` (one line, naming the file and the field)."""
        try:
            _need(isinstance(data, dict), "not a JSON object")
            _need(isinstance(data.get("model"), dict), "no model name")
            _need(isinstance(data.get("input"), dict), "no input size")
            files = data.get("files", {})
            _need(isinstance(files, dict), "no file list")
            reports = {k: data[k] for k in _REPORT_SECTIONS if data.get(k) is not None}
            _need(all(isinstance(v, dict) for v in reports.values()), "a report section is not an object")
            input_spec = InputSpec.from_dict(data["input"])
            specs = data.get("inputs")
            if specs is None and "shape" in data["input"]:  # format 1 kept the only input's spec in "input"
                specs = [{"dtype": "uint8", "layout": "NHWC", "color": "RGB", **data["input"]}]
            _need(specs is None or isinstance(specs, list), "inputs must be a list")
            _need(isinstance(data.get("outputs", []), list), "outputs must be a list")
            manifest = cls(
                model=ModelInfo.from_dict(data["model"]), input=input_spec,
                inputs=[TensorSpec.from_dict(s) for s in specs or []],
                outputs=[TensorSpec.from_dict(s) for s in data.get("outputs", [])],
                files={str(name): FileEntry.from_dict(entry) for name, entry in files.items()},
                calibration=None if data.get("calibration") is None else CalibrationRecord.from_dict(
                    data["calibration"]),
                crf=None if data.get("crf") is None else CRFSection.from_dict(data["crf"]),
                reports=reports)
        except ManifestError as exc:
            raise ManifestError(f"{where}: {exc}; re-export the bundle") from None
        except TypeError as exc:  # a field of the wrong JSON type reached a record's constructor
            raise ManifestError(f"{where}: malformed manifest ({exc}); re-export the bundle") from None
        manifest.check_names(where)
        return manifest

    def check_names(self, where: str | Path) -> None:
        """Every file name the manifest lists (and the CRF graphs it names) stays inside the bundle."""
        root = Path(where).parent
        for name in [*self.files, *((self.crf.standalone, self.crf.fused) if self.crf else ())]:
            inside(root, name, str(where))

    def to_dict(self) -> dict:
        """The JSON document, tagged with the format and version; checked by reading it back first."""
        data: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                                "model": self.model.to_dict(), "input": self.input.to_dict(),
                                "inputs": [s.to_dict() for s in self.inputs],
                                "outputs": [s.to_dict() for s in self.outputs],
                                "files": {name: entry.to_dict() for name, entry in sorted(self.files.items())}}
        data.update({k: self.reports[k] for k in _REPORT_SECTIONS if k in self.reports})
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        if self.crf is not None:
            data["crf"] = self.crf.to_dict()
        return data
