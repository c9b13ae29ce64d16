"""Training configuration: one dataclass, loadable from YAML (optional) and overridable by ``key=value``."""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.errors import EdgesegError

# The CPU recipe for the built-in synthetic scenes (measured in benchmarks/train_synthetic.py, used by the demo):
# 128×256 crops, batch 16, AdamW, OHEM; validation and checkpoints only at the end of a time-boxed run.
SYNTHETIC_CPU_RECIPE = dict(data="synthetic", crop=(128, 256), scales=(0.75, 1.5), batch_size=16, optimizer="adamw",
                            lr=3e-3, weight_decay=1e-4, loss="ohem", warmup=20, val_every=10**9,
                            checkpoint_every=10**9, workers=2, seed=0)


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
    optimizer: str = "adamw"  # adamw | sgd (the papers' choice: sgd, lr 0.05 at batch 16, 5e-4 decay)
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: int = 50
    poly_power: float = 0.9
    loss: str = "ohem"  # ce | ohem | relax
    aux_weight: float | None = None  # None: the model's own (its paper's; 1.0 unless stated)
    class_weights: list[float] | None = None
    teacher: str | None = None  # checkpoint of a teacher for knowledge distillation
    kd_temperature: float = 1.0
    kd_weight: float = 1.0
    kd_pairwise_weight: float = 0.0
    amp: bool = True  # mixed precision, on CUDA only
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

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise EdgesegError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.loss not in ("ce", "ohem", "relax"):
            raise EdgesegError(f"loss must be ce, ohem or relax, got {self.loss!r}")
        for name in ("iters", "batch_size", "accumulate", "checkpoint_every", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise EdgesegError(f"{name} must be at least 1")
        synthetic = self.data.startswith("synthetic")
        if self.crop is None:
            self.crop = (128, 256) if synthetic else (512, 1024)
        if self.scales is None:
            self.scales = (0.75, 1.5) if synthetic else (0.5, 2.0)
        if min(self.crop) < 16:
            raise EdgesegError(f"crop must be at least 16x16, got {self.crop}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(name: str, value, current):
    """Convert a YAML/CLI value to the type of the field's current value."""
    if name == "crop" and isinstance(value, str):
        value = value.lower().replace("x", ",").split(",")
    if name == "crop" and isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if name == "scales" and isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    if isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(type(current[0])(v) for v in value)
    if isinstance(current, bool) and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, (int, float)) and not isinstance(current, bool) and value is not None:
        try:
            return type(current)(value)
        except (TypeError, ValueError):
            raise EdgesegError(f"{name} expects a {type(current).__name__}, got {value!r}") from None
    return value


def apply_overrides(config: TrainConfig, values: dict) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(config)}
    for key, value in values.items():
        if key not in names:
            raise EdgesegError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(names))}")
        setattr(config, key, _coerce(key, value, getattr(config, key)))
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
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return out


def load_config_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise EdgesegError(f"config file {p} not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise EdgesegError("reading a YAML config needs PyYAML: pip install pyyaml") from None
        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise EdgesegError(f"{p}: expected a mapping of config keys")
    return data
