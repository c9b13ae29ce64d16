"""What a bundle becomes in a Triton model repository, and the ``config.pbtxt`` text that says it.

Pure decisions on the bundle's manifest (no onnx, no torch, no file written): :func:`plan_triton_model` picks the
model file (the ONNX of the precision asked, or the TensorRT plan built for it), the batch policy (a dynamic-batch
bundle gets Triton's dynamic batcher, a fixed batch ``max_batch_size: 0`` and full dims) and the accelerator;
:func:`triton_model_config` renders the ``config.pbtxt``. ``edgeseg deploy triton`` writes the repository from
them; anything else that needs to describe the same tensors to Triton (a local server) calls the same functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeseg import __version__
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import LABELS, LOGITS, PROBS, Bundle
from edgeseg.runtime.manifest import DYNAMIC_BATCH, FileEntry, TensorSpec

ENGINE_CHOICES = ("auto", "onnx", "plan")
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 100
DEFAULT_TRT_CACHE = "/tmp/edgeseg-trt-cache"  # inside the server's container
LABELS_FILE = "labels.txt"
VERSION = "1"  # the model version folder
ONNX_FILE, PLAN_FILE = "model.onnx", "model.plan"
ONNX_BACKEND, PLAN_PLATFORM = "onnxruntime", "tensorrt_plan"
CLASS_OUTPUTS = (LABELS, LOGITS, PROBS)  # outputs whose values (labels) or channels (logits, probs) are class ids
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

# numpy dtype names (as the manifest writes them) -> Triton's data types
TRITON_TYPES = {"bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
                "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
                "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64"}


@dataclass
class TritonOptions:
    """What ``edgeseg deploy triton`` was asked for. ``max_batch`` None: 8, or a plan's profile maximum;
    ``preferred_batch`` None: a plan's optimisation-profile batch, else none (Triton's advice)."""

    name: str | None = None
    precision: str = "fp32"
    engine: str = "auto"
    max_batch: int | None = None
    preferred_batch: tuple[int, ...] | None = None
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    kind: str = "gpu"
    workspace_mb: int | None = None
    trt_cache: str | None = DEFAULT_TRT_CACHE

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise EdgesegError(f"precision must be fp32, fp16 or int8, got {self.precision!r}")
        if self.engine not in ENGINE_CHOICES:
            raise EdgesegError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {self.engine!r}")
        if self.kind not in KINDS:
            raise EdgesegError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for what, value in (("max_batch", self.max_batch), ("instances", self.instances),
                            ("workspace_mb", self.workspace_mb)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise EdgesegError(f"{what} must be a positive whole number, got {value!r}")
        if not isinstance(self.queue_delay_us, int) or self.queue_delay_us < 0:
            raise EdgesegError(f"queue_delay_us must be 0 or more, got {self.queue_delay_us!r}")
        if self.name is not None and not NAME_PATTERN.fullmatch(self.name):
            raise EdgesegError(f"model name {self.name!r}: use letters, digits, '_', '.' and '-' (up to 128, "
                               f"not starting with '.', '_' or '-')")


@dataclass
class TritonTensor:
    """One input or output as Triton sees it: dims without the batch when the model batches."""

    name: str
    data_type: str
    dims: list[int]
    label_filename: str | None = None


@dataclass
class TritonModel:
    """Every decision about the Triton model: which bundle file becomes ``1/<model_file>``, on what backend, with
    which batch policy, tensors and accelerator parameters."""

    name: str
    source: str  # the bundle file copied into the version folder
    source_entry: FileEntry
    model_file: str  # model.onnx or model.plan
    precision: str
    max_batch_size: int
    dynamic_batching: bool
    preferred_batch: tuple[int, ...]
    queue_delay_us: int
    instances: int
    kind: str
    inputs: list[TritonTensor]
    outputs: list[TritonTensor]
    accelerator: dict[str, str] = field(default_factory=dict)  # ONNX on a GPU: the TensorRT accelerator's params
    notes: list[str] = field(default_factory=list)  # comment lines at the top of config.pbtxt

    @property
    def is_plan(self) -> bool:
        return self.model_file == PLAN_FILE

    @property
    def engine(self):
        """The plan's :class:`EngineRecord` (GPU, compute capability, TensorRT), None for ONNX."""
        return self.source_entry.engine if self.is_plan else None


def default_name(bundle: Bundle) -> str:
    """The bundle's model name, with characters a Triton model name should not have replaced by ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", bundle.model.name).lstrip("._-")
    return name[:128] or "model"


def plan_engines(bundle: Bundle, precision: str) -> list[str]:
    """The bundle's TensorRT engines of ``precision`` Triton can load as a ``tensorrt_plan``, by name: GPU
    engines of the model (not DLA builds, not the CRF)."""
    return sorted(name for name, entry in bundle.files.items()
                  if entry.kind == "engine" and entry.model_precision == precision
                  and entry.engine is not None and entry.engine.dla_core is None)


def _onnx_source(bundle: Bundle, options: TritonOptions) -> tuple[str, list[str]]:
    """The bundle's ONNX file for the precision asked, and notes on it."""
    precision = options.precision
    name = bundle.find("onnx", precision)
    if precision == "fp16" and options.kind == "cpu":
        raise EdgesegError("--precision fp16 runs on a GPU: use fp32 (or int8) with --kind cpu")
    if name is None and precision == "fp16":
        fp32 = bundle.find("onnx", "fp32")
        if fp32 is not None:
            return fp32, [f"no gated fp16 variant in the bundle: TensorRT runs {fp32} in FP16 (precision_mode), "
                          f"not measured by edgeseg; edgeseg calibrate BUNDLE --fp16 adds and gates one"]
    if name is None:
        hint = ("add it with edgeseg calibrate BUNDLE --int8 --calib-data SPEC" if precision == "int8"
                else "re-export the bundle")
        raise EdgesegError(f"the bundle has no {precision} ONNX model: {hint}")
    target = bundle.files[name].target
    if precision == "int8" and options.kind == "gpu" and (target or "tensorrt") != "tensorrt":
        raise EdgesegError(f"{name} was quantized for --int8-target {target} (uint8, asymmetric), which TensorRT "
                           f"cannot parse: use --kind cpu, or rerun edgeseg calibrate BUNDLE --int8-target tensorrt")
    return name, []


def _choose_source(bundle: Bundle, options: TritonOptions) -> tuple[str, bool, list[str]]:
    """(bundle file, is a plan, notes) for the options' precision and ``engine`` choice."""
    engines = plan_engines(bundle, options.precision)
    if options.engine == "plan" and not engines:
        raise EdgesegError(f"--engine plan: the bundle has no {options.precision} TensorRT engine for a GPU; "
                           f"build one with edgeseg build BUNDLE --precision {options.precision}, or use --engine "
                           f"onnx")
    if options.engine != "onnx" and engines and options.kind == "gpu":
        return engines[0], True, []
    if options.engine == "plan":
        raise EdgesegError("--engine plan runs on a GPU: drop --kind cpu")
    name, notes = _onnx_source(bundle, options)
    return name, False, notes


def _batch_policy(bundle: Bundle, options: TritonOptions, entry: FileEntry,
                  is_plan: bool) -> tuple[int, tuple[int, ...]]:
    """(max_batch_size, preferred batch sizes): 0 and none for a fixed batch; for a dynamic batch the largest
    batch asked, refused beyond a plan's optimisation profile."""
    if bundle.batch != DYNAMIC_BATCH:
        return 0, ()
    profile_max = profile_opt = None
    if is_plan and entry.engine is not None and entry.engine.profile:
        shapes = [s for s in entry.engine.profile.values() if isinstance(s, list) and len(s) == 3]
        if shapes:
            profile_max = min(int(s[2][0]) for s in shapes)
            profile_opt = min(int(s[1][0]) for s in shapes)
    max_batch = options.max_batch or (profile_max or DEFAULT_MAX_BATCH)
    if profile_max is not None and max_batch > profile_max:
        raise EdgesegError(f"--max-batch {max_batch}: the engine's optimization profile ends at batch "
                           f"{profile_max}; use --max-batch {profile_max} or less, or rebuild it with edgeseg "
                           f"build BUNDLE --max-batch {max_batch}")
    preferred = options.preferred_batch
    if preferred is None:
        preferred = (profile_opt,) if profile_opt is not None and profile_opt <= max_batch else ()
    bad = [b for b in preferred if not 1 <= b <= max_batch]
    if bad:
        raise EdgesegError(f"--preferred-batch {bad[0]}: preferred batch sizes must be 1..{max_batch} "
                           f"(--max-batch)")
    return max_batch, tuple(sorted(set(preferred)))


def _tensor(spec: TensorSpec, batching: bool, labels: str | None) -> TritonTensor:
    if spec.dtype not in TRITON_TYPES:
        raise EdgesegError(f"tensor {spec.name}: dtype {spec.dtype!r} has no Triton data type")
    shape = spec.shape[1:] if batching else spec.shape
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return TritonTensor(spec.name, TRITON_TYPES[spec.dtype], dims, labels)


def _shape_list(specs: list[TensorSpec], batch: int) -> str:
    """ONNX Runtime's TensorRT profile shapes: ``image:1x512x1024x3,depth:1x512x1024``."""
    return ",".join(f"{s.name}:" + "x".join(str(d) for d in [batch, *s.shape[1:]]) for s in specs)


def _accelerator(bundle: Bundle, options: TritonOptions, entry: FileEntry, name: str, max_batch: int,
                 preferred: tuple[int, ...]) -> dict[str, str]:
    """The TensorRT execution accelerator's parameters (onnxruntime backend, GPU instances)."""
    params = {"precision_mode": options.precision.upper()}
    if options.workspace_mb is not None:
        params["max_workspace_size_bytes"] = str(options.workspace_mb * 2**20)
    if options.trt_cache:
        params["trt_engine_cache_enable"] = "true"
        # a folder per model file and precision: a new model never meets the engines of an old one
        params["trt_engine_cache_path"] = (f"{options.trt_cache.rstrip('/')}/{name}/"
                                           f"{options.precision}-{entry.sha256[:12]}")
    if max_batch:  # one engine for every batch 1..max, not a rebuild whenever a larger batch first arrives
        specs = bundle.manifest.inputs
        params["trt_profile_min_shapes"] = _shape_list(specs, 1)
        params["trt_profile_opt_shapes"] = _shape_list(specs, max(preferred) if preferred else max_batch)
        params["trt_profile_max_shapes"] = _shape_list(specs, max_batch)
    return params


def plan_triton_model(bundle: Bundle, options: TritonOptions | None = None) -> TritonModel:
    """Decide the Triton model for ``bundle``: see the module's docstring. Refuses (one line) a precision the
    bundle lacks, ``engine="plan"`` without an engine, a batch beyond a plan's profile, a CPU plan."""
    options = options or TritonOptions()
    if not bundle.manifest.inputs or not bundle.manifest.outputs:
        raise EdgesegError(f"{bundle.root}: the manifest lists no input or output tensors; re-export the bundle")
    name = options.name or default_name(bundle)
    source, is_plan, notes = _choose_source(bundle, options)
    entry = bundle.entry(source)
    max_batch, preferred = _batch_policy(bundle, options, entry, is_plan)
    batching = max_batch > 0
    inputs = [_tensor(s, batching, None) for s in bundle.manifest.inputs]
    outputs = [_tensor(s, batching, LABELS_FILE if s.name in CLASS_OUTPUTS else None)
               for s in bundle.manifest.outputs]
    accelerator = ({} if is_plan or options.kind == "cpu"
                   else _accelerator(bundle, options, entry, name, max_batch, preferred))
    return TritonModel(name=name, source=source, source_entry=entry, model_file=PLAN_FILE if is_plan else ONNX_FILE,
                       precision=options.precision, max_batch_size=max_batch, dynamic_batching=batching,
                       preferred_batch=preferred, queue_delay_us=options.queue_delay_us,
                       instances=options.instances, kind=options.kind, inputs=inputs, outputs=outputs,
                       accelerator=accelerator, notes=notes)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_block(tensor: TritonTensor) -> list[str]:
    lines = ["  {", f"    name: {_quote(tensor.name)}", f"    data_type: {tensor.data_type}",
             f"    dims: [ {', '.join(str(d) for d in tensor.dims)} ]"]
    if tensor.label_filename:
        lines.append(f"    label_filename: {_quote(tensor.label_filename)}")
    return [*lines, "  }"]


def _tensor_list(key: str, tensors: list[TritonTensor]) -> list[str]:
    blocks = [_tensor_block(t) for t in tensors]
    for block in blocks[:-1]:
        block[-1] += ","
    return [f"{key} [", *(line for block in blocks for line in block), "]"]


def _header(bundle: Bundle, model: TritonModel) -> list[str]:
    m = bundle.manifest
    h, w = bundle.feed_size
    image = m.inputs[0]
    lines = [f"edgeseg {__version__}: {m.model.name} ({m.model.num_classes} classes) from {model.source} "
             f"(sha256 {model.source_entry.sha256[:16]}), precision {model.precision}",
             f"{image.name}: {image.dtype} {image.layout or ''} {image.color or ''} frames of exactly {h}x{w}; "
             f"normalisation runs inside the graph".replace("  ", " ")]
    record = model.engine
    if record is not None:
        lines.append(f"TensorRT plan built with TensorRT {record.tensorrt} for {record.gpu} (compute "
                     f"{record.compute_capability}, hardware compatibility {record.hardware_compatibility}): "
                     f"it loads only with that TensorRT" + (" or newer (version compatible: start tritonserver with "
                                                            "--backend-config=tensorrt,version-compatible=true)"
                                                            if record.version_compatible else "")
                     + " on that GPU architecture")
    return lines + model.notes


def render_config(bundle: Bundle, model: TritonModel) -> str:
    """The ``config.pbtxt`` text of ``model`` (protobuf text format, with ``#`` comments on where it came from)."""
    lines = [f"# {line}" for line in _header(bundle, model)]
    lines.append(f"name: {_quote(model.name)}")
    lines.append(f"platform: {_quote(PLAN_PLATFORM)}" if model.is_plan else f"backend: {_quote(ONNX_BACKEND)}")
    lines.append(f"default_model_filename: {_quote(model.model_file)}")
    record = model.engine
    if record is not None:
        lines.append(f"cc_model_filenames {{ key: {_quote(record.compute_capability)} "
                     f"value: {_quote(model.model_file)} }}")
    lines.append(f"max_batch_size: {model.max_batch_size}")
    lines += _tensor_list("input", model.inputs) + _tensor_list("output", model.outputs)
    lines += ["instance_group [", "  {", f"    count: {model.instances}", f"    kind: {KINDS[model.kind]}", "  }", "]"]
    if model.dynamic_batching:
        lines.append("dynamic_batching {")
        if model.preferred_batch:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in model.preferred_batch)} ]")
        lines += [f"  max_queue_delay_microseconds: {model.queue_delay_us}", "}"]
    if model.accelerator:
        lines += ["optimization {", "  execution_accelerators {", "    gpu_execution_accelerator: [", "      {",
                  '        name: "tensorrt"']
        lines += [f"        parameters {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in model.accelerator.items()]
        lines += ["      }", "    ]", "  }", "}"]
    return "\n".join(lines) + "\n"


def triton_model_config(bundle: Bundle, options: TritonOptions | None = None) -> str:
    """The ``config.pbtxt`` Triton needs to serve ``bundle`` as ``edgeseg deploy triton`` writes it."""
    return render_config(bundle, plan_triton_model(bundle, options))


def labels_text(bundle: Bundle) -> str:
    """``labels.txt``: one class name per line, line ``i`` naming class id ``i``."""
    return "".join(" ".join(c.splitlines()) + "\n" for c in bundle.model.classes)


__all__ = ["TritonModel", "TritonOptions", "TritonTensor", "labels_text", "plan_triton_model", "render_config",
           "triton_model_config"]
