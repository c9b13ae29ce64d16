"""Training configuration: one dataclass, loadable from YAML (optional) and overridable by ``key=value``.

Values enter from three places (a config file, ``--set key=value``, a resumed run's ``config.json``); each
passes through :func:`apply_overrides` (conversion to the field's type) and :meth:`TrainConfig.validate`
(ranges), so a bad value is one clear line before any data is read.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.errors import EdgesegError

# The CPU recipe for the built-in synthetic scenes (measured in benchmarks/demo_recipe.py, used by the demo):
# whole 256×512 scenes at batch 4 (128×256 crops at scales 0.75-1.5 left person and pole unlearnt), AdamW, OHEM
# with person and pole weighted 4 and car 1.5, bfloat16 autocast where the CPU has it (about 1.5× the steps of
# float32); validation and checkpoints only at the end of a time-boxed run.
SYNTHETIC_CPU_RECIPE = dict(data="synthetic", crop=(256, 512), scales=(1.0, 1.0), jitter=0.0, batch_size=4,
                            optimizer="adamw", lr=3e-3, weight_decay=1e-4, loss="ohem",
                            class_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 4.0, 4.0], cpu_bf16=True, warmup=20,
                            val_every=10**9, checkpoint_every=10**9, workers=2, seed=0)
MIN_CROP = 16
MAX_SIDE = 8192  # as edgeseg.cli.args.input_size: an 8K frame; more is a typo
MAX_SCALE = 10.0


@dataclass
class TrainConfig:
    """Everything a training run depends on. Saved beside the checkpoints as ``config.json``."""

    model: str = "bisenetv2"
    model_kwargs: dict = field(default_factory=dict)
    data: str = "synthetic"
    train_split: str = "train"
    val_split: str = "val"
    out: str = "runs/train"
    iters: int = 2000
    batch_size: int = 8
    crop: tuple[int, int] | None = None  # None: 128x256 on synthetic scenes (CPU-friendly), else 512x1024
    scales: tuple[float, float] | None = None  # None: (0.75, 1.5) on synthetic scenes, else (0.5, 2.0)
    jitter: float = 0.3
    class_uniform: float = 0.0  # fraction of crops centred on a class drawn uniformly from those present
    optimizer: str = "adamw"  # adamw | sgd (the papers' choice: sgd, lr 0.05 at batch 16, 5e-4 decay)
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: int = 50
    poly_power: float = 0.9
    loss: str = "auto"  # ce | ohem | relax | auto (ohem; ce with weak labels)
    # label relaxation's official options (Zhu et al., CVPR 2019; see LabelRelaxation); loss=relax only
    relax_wt_bound: float = 0.0  # per-image class weights 1 + b (1 - share), averaged over each neighbourhood; 0 off
    relax_strict_classes: list | None = None  # class names or indices that keep a hard target (thin objects)
    relax_off: float | None = None  # fraction of iters after which the window halves and boundaries weigh 2
    aux_weight: float | None = None  # None: the model's own (its paper's; 1.0 unless stated)
    class_weights: list[float] | None = None
    teacher: str | None = None  # checkpoint of a teacher for knowledge distillation
    weights: str | None = None  # a checkpoint or bare state dict of the same model to start from (fine-tuning)
    kd_temperature: float = 1.0
    kd_weight: float = 1.0
    kd_pairwise_weight: float = 0.0
    amp: bool = True  # mixed precision (float16), on CUDA only
    cpu_bf16: bool = False  # bfloat16 autocast on a CPU with native bfloat16 (avx512_bf16, amx_bf16); else ignored
    accumulate: int = 1
    checkpoint_every: int = 500
    val_every: int = 500
    val_max_images: int | None = None
    max_minutes: float | None = None  # stop (and validate, checkpoint) when this much time has passed
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    sync_bn: bool = True
    log_every: int = 20
    # Training from cheap labels (edgeseg.data.weak) with the gated CRF loss (edgeseg.train.gated_crf)
    val_data: str | None = None  # validate on this data spec's val split instead of data's
    extra_train_data: list[str] = field(default_factory=list)  # more training data specs, the same classes
    weak: str = "none"  # none | points | scribbles | boxes[:NAME,...] | image | crop:HxW | given
    weak_seed: int = 0  # annotations depend on (weak_seed, sample index) only
    gcrf_weight: float = 0.0  # 0 = off (Obukhov et al. use 0.1)
    gcrf_radius: int = 5  # window of (2r+1)² cells of the loss grid
    gcrf_stride: int = 4  # loss grid: probabilities and image average-pooled by this
    gcrf_sigma_xy: float = 24.0  # input pixels (6 cells at stride 4)
    gcrf_sigma_rgb: float = 0.1  # ImageNet-normalised units (about 5.8 of 255 levels)
    gcrf_gate: str = "both"  # both | src: invalid (padded) cells send nothing, and with both receive nothing
    gcrf_start: float = 0.005  # fraction of iters before the term starts

    def validate(self) -> TrainConfig:
        """Check every value (types and ranges); a bad one raises :class:`EdgesegError` naming the key.

        Does not change the config (see :meth:`resolved` for the defaults that depend on the data)."""
        for name in _STR:
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise EdgesegError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in _OPT_STR:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise EdgesegError(f"{name} must be a file path, got {value!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise EdgesegError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.loss not in ("auto", "ce", "ohem", "relax"):
            raise EdgesegError(f"loss must be auto, ce, ohem or relax, got {self.loss!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise EdgesegError(f"unknown device {self.device!r}: use auto, cpu, cuda or cuda:N")
        for name, low in _INT.items():
            _check_int(name, getattr(self, name), low)
        if self.val_max_images is not None:
            _check_int("val_max_images", self.val_max_images, 1)
        if self.seed >= 2**32:
            raise EdgesegError(f"seed must be below 2**32, got {self.seed}")
        for name, (low, high, open_low) in _FLOAT.items():
            _check_number(name, getattr(self, name), low, high, open_low)
        if self.aux_weight is not None:
            _check_number("aux_weight", self.aux_weight, 0.0, None, False)
        if self.max_minutes is not None:
            _check_number("max_minutes", self.max_minutes, 0.0, None, True)
        for name in _BOOL:
            if not isinstance(getattr(self, name), bool):
                raise EdgesegError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_model_kwargs(self.model_kwargs)
        if self.crop is not None:
            _check_crop(self.crop)
        if self.scales is not None:
            _check_scales(self.scales)
        if self.class_weights is not None:
            _check_class_weights(self.class_weights)
        _check_weak_keys(self)
        _check_relax(self)
        return self

    def resolved(self) -> TrainConfig:
        """A validated copy with the data-dependent defaults (``crop``, ``scales``) filled in."""
        self.validate()
        synthetic = self.data.startswith("synthetic")
        crop = tuple(self.crop) if self.crop is not None else ((128, 256) if synthetic else (512, 1024))
        scales = tuple(self.scales) if self.scales is not None else ((0.75, 1.5) if synthetic else (0.5, 2.0))
        loss = self.loss if self.loss != "auto" else ("ce" if self.weak != "none" else "ohem")
        return dataclasses.replace(self, crop=crop, scales=scales, model_kwargs=dict(self.model_kwargs), loss=loss,
                                   extra_train_data=list(self.extra_train_data))

    def to_dict(self) -> dict:
        """The config as plain JSON-able values (what ``config.json`` and checkpoints store)."""
        return dataclasses.asdict(self)


# Field kinds: the converter (apply_overrides) and the validator share them.
_STR = ("model", "data", "train_split", "val_split", "out", "optimizer", "loss", "device", "weak", "gcrf_gate")
_OPT_STR = ("teacher", "weights")
_INT = {"iters": 1, "batch_size": 1, "warmup": 0, "accumulate": 1, "checkpoint_every": 1, "val_every": 1,
        "workers": 0, "seed": 0, "log_every": 1, "weak_seed": 0, "gcrf_radius": 1, "gcrf_stride": 1}
_OPT_INT = ("val_max_images",)
# name -> (low, high, low excluded)
_FLOAT = {"lr": (0.0, None, True), "momentum": (0.0, 1.0, False), "weight_decay": (0.0, None, False),
          "jitter": (0.0, 1.0, False), "poly_power": (0.0, None, False), "kd_temperature": (0.0, None, True),
          "kd_weight": (0.0, None, False), "kd_pairwise_weight": (0.0, None, False),
          "gcrf_weight": (0.0, None, False), "gcrf_sigma_xy": (0.0, None, True), "gcrf_sigma_rgb": (0.0, None, True),
          "gcrf_start": (0.0, 1.0, False), "relax_wt_bound": (0.0, None, False),
          "class_uniform": (0.0, 1.0, False)}
_OPT_FLOAT = ("aux_weight", "max_minutes", "relax_off")
_BOOL = ("amp", "cpu_bf16", "sync_bn")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EdgesegError(f"{name} must be a whole number, got {value!r}")
    if value < low:
        raise EdgesegError(f"{name} must be at least {low}, got {value}")


def _check_number(name: str, value, low: float, high: float | None, open_low: bool) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise EdgesegError(f"{name} must be a finite number, got {value!r}")
    if (value <= low if open_low else value < low) or (high is not None and value > high):
        bound = f"{'above' if open_low else 'at least'} {low:g}" + (f" and at most {high:g}" if high is not None
                                                                     else "")
        raise EdgesegError(f"{name} must be {bound}, got {value:g}")


def _check_model_kwargs(kwargs) -> None:
    if not isinstance(kwargs, dict):
        raise EdgesegError(f"model_kwargs must be a mapping such as {{'backbone': 'resnet18'}}, got {kwargs!r}")
    for key in kwargs:
        if not isinstance(key, str) or not key.isidentifier():
            raise EdgesegError(f"model_kwargs: {key!r} is not a keyword name")
        if key == "num_classes":
            raise EdgesegError("model_kwargs: num_classes is not a model option here; it comes from the data")


def _check_crop(crop) -> None:
    if (not isinstance(crop, (list, tuple)) or len(crop) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in crop)):
        raise EdgesegError(f"crop must be HxW (two whole numbers), got {crop!r}")
    if min(crop) < MIN_CROP or max(crop) > MAX_SIDE:
        raise EdgesegError(f"crop sides must be {MIN_CROP} to {MAX_SIDE}, got {crop[0]}x{crop[1]}")


def _check_scales(scales) -> None:
    if (not isinstance(scales, (list, tuple)) or len(scales) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in scales)):
        raise EdgesegError(f"scales must be two numbers (smallest, largest), got {scales!r}")
    low, high = scales
    if not 0 < low <= high <= MAX_SCALE:
        raise EdgesegError(f"scales must be two increasing numbers above 0 and at most {MAX_SCALE:g}, got "
                           f"({low:g}, {high:g})")


def _check_class_weights(weights) -> None:
    if (not isinstance(weights, (list, tuple)) or not weights
            or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in weights)):
        raise EdgesegError(f"class_weights must be a list of numbers of at least 0, one per class, got {weights!r}")
    if not any(weights):
        raise EdgesegError("class_weights are all 0: at least one class must count")


def _check_weak_keys(config: TrainConfig) -> None:
    """The weak-supervision keys: data specs, the mode, bounds, and the losses that do not fit sparse labels."""
    from edgeseg.data import parse_spec
    from edgeseg.data.weak import parse_mode

    if config.val_data is not None:
        if not isinstance(config.val_data, str):
            raise EdgesegError(f"val_data must be a data spec, got {config.val_data!r}")
        parse_spec(config.val_data)
    if not isinstance(config.extra_train_data, list) or not all(isinstance(v, str) for v in config.extra_train_data):
        raise EdgesegError(f"extra_train_data must be a list of data specs, got {config.extra_train_data!r}")
    for spec in config.extra_train_data:
        parse_spec(spec)
    mode = parse_mode(config.weak)
    if config.weak_seed >= 2**32:
        raise EdgesegError(f"weak_seed must be below 2**32, got {config.weak_seed}")
    if config.gcrf_radius > 15 or config.gcrf_stride > MIN_CROP:
        raise EdgesegError(f"gcrf_radius must be 1 to 15 and gcrf_stride 1 to {MIN_CROP}, got {config.gcrf_radius} "
                           f"and {config.gcrf_stride}")
    if config.gcrf_gate not in ("both", "src"):
        raise EdgesegError(f"gcrf_gate must be both or src, got {config.gcrf_gate!r}")
    if mode.kind == "none":
        return
    if config.loss == "ohem":
        raise EdgesegError(f"loss=ohem keeps only the hardest labelled pixels, dropping part of the few that "
                           f"weak={config.weak} labels: use loss=ce (or leave loss unset)")
    if config.loss == "relax":
        raise EdgesegError(f"loss=relax spreads every label to its 3x3 neighbours, labelling pixels that "
                           f"weak={config.weak} leaves unlabelled: use loss=ce (or leave loss unset)")
    if mode.sets and config.class_weights is not None:
        raise EdgesegError(f"class_weights do not apply to the allowed-class sets of weak={config.weak}")


def _check_relax(config: TrainConfig) -> None:
    if config.relax_off is not None:
        _check_number("relax_off", config.relax_off, 0.0, 1.0, True)
    strict = config.relax_strict_classes
    if strict is not None and (not isinstance(strict, (list, tuple)) or not all(
            (isinstance(v, int) and not isinstance(v, bool) and v >= 0) or (isinstance(v, str) and v.strip())
            for v in strict)):
        raise EdgesegError(f"relax_strict_classes must be a list of class names or indices, got {strict!r}")
    used = [k for k in ("relax_wt_bound", "relax_strict_classes", "relax_off") if getattr(config, k)]
    if used and config.loss != "relax":
        raise EdgesegError(f"{', '.join(used)} apply to loss=relax, not loss={config.loss}")


def _split(value) -> list:
    """A list value given as text (``--set crop=256,512``): split on commas or ``x``."""
    return [v for v in re.split(r"\s*[,xX×]\s*", value.strip().strip("[]()")) if v] if isinstance(value, str) else value


def _to_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise EdgesegError(f"{name} expects a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise EdgesegError(f"{name} expects a whole number, got {value!r}")


def _to_float(name: str, value) -> float:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise EdgesegError(f"{name} expects a number, got {value!r}")


def _to_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise EdgesegError(f"{name} expects true or false, got {value!r}")


def _coerce(name: str, value):
    """Convert a YAML/JSON/CLI value to the field's type; a value that does not convert is refused."""
    optional = name in _OPT_INT or name in _OPT_FLOAT or name in _OPT_STR or name in ("crop", "scales",
                                                                                        "class_weights", "val_data",
                                                                                        "relax_strict_classes")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional:
            return None
        raise EdgesegError(f"{name} cannot be empty")
    if name in _INT or name in _OPT_INT:
        return _to_int(name, value)
    if name in _FLOAT or name in _OPT_FLOAT:
        return _to_float(name, value)
    if name in _BOOL:
        return _to_bool(name, value)
    if name in _STR or name in _OPT_STR:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise EdgesegError(f"{name} expects text, got {value!r}")
        return str(value)
    if name == "crop":
        parts = [value, value] if isinstance(value, int) and not isinstance(value, bool) else _split(value)
        if not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise EdgesegError(f"crop expects HxW, e.g. 512x1024, got {value!r}")
        return tuple(_to_int("crop", v) for v in parts)
    if name == "scales":
        parts = _split(value)
        if not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise EdgesegError(f"scales expects two numbers, e.g. [0.5, 2.0], got {value!r}")
        return tuple(_to_float("scales", v) for v in parts)
    if name == "class_weights":
        parts = _split(value)
        if not isinstance(parts, (list, tuple)):
            raise EdgesegError(f"class_weights expects a list of numbers, got {value!r}")
        return [_to_float("class_weights", v) for v in parts]
    if name == "relax_strict_classes":
        parts = _split(value) if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            parts = [parts]
        return [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in parts]
    if name == "model_kwargs":
        _check_model_kwargs(value)
        return dict(value)
    if name == "extra_train_data":  # one spec as text, or a list (a folder spec holds commas: never split)
        return [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else value
    return value


def apply_overrides(config: TrainConfig, values: dict) -> TrainConfig:
    """Set ``values`` (from a file, ``--set`` or a stored config) on ``config``, each converted to its field's
    type; an unknown key or a value that does not convert raises :class:`EdgesegError`."""
    names = {f.name for f in dataclasses.fields(config)}
    for key, value in values.items():
        if key not in names:
            raise EdgesegError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(names))}")
        setattr(config, key, _coerce(key, value))
    return config


def parse_set(items: list[str]) -> dict:
    """``["lr=0.01", "crop=256x512", "model_kwargs={'backbone': 'resnet18'}"]`` → dict of Python values."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise EdgesegError(f"--set expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw
        out[key.strip()] = value
    return out


def _line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def load_config_file(path: str | Path) -> dict:
    """The mapping of config keys in a YAML (``.yaml``/``.yml``) or JSON file; a file that does not parse is
    one line naming the file and the line."""
    p = Path(path)
    if not p.is_file():
        raise EdgesegError(f"config file {p} not found")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        from edgeseg.fileio import os_error

        raise os_error(exc, p, verb="cannot read") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgesegError(f"{p}: line {_line_of(raw, exc.start)}: not UTF-8 text; save the config as UTF-8") \
            from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise EdgesegError("reading a YAML config needs PyYAML: pip install pyyaml") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise EdgesegError(f"{p}: {where}not valid YAML ({problem})") from None
        except RecursionError:
            raise EdgesegError(f"{p}: not valid YAML (nested too deeply)") from None
        data = {} if data is None else data
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EdgesegError(f"{p}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise EdgesegError(f"{p}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise EdgesegError(f"{p}: expected a mapping of config keys, got {type(data).__name__}")
    return data
