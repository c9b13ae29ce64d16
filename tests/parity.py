"""The parity fixtures (tests/fixtures/parity, see its README): a reference implementation's logits for weights
anyone regenerates from the reference's key list with :func:`fill_value`."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent / "fixtures" / "parity"
# format -> fixture folder (torchvision's resnet50 variant shares the resnet101 key map: no fixture of its own)
FIXTURES = {
    "coincheung-bisenetv2": "coincheung_bisenetv2",
    "coincheung-bisenetv1": "coincheung_bisenetv1",
    "torchseg-bisenet-r18": "torchseg_bisenet_r18",
    "torchseg-bisenet-x39": "torchseg_bisenet_x39",
    "lednet": "xiaoyufenfei_lednet",
    "torchvision-deeplabv3-resnet101": "torchvision_deeplabv3_resnet101",
    "danet": "junfu_danet",
    "acnet": "acnet",
    "deeplab-largefov": "wanglei_deeplabv1",
}
MAX_RELATIVE_DIFF = 1e-4
MIN_LABEL_AGREEMENT = 0.9999


def fill_value(key: str, shape, seed: int) -> np.ndarray:
    """The fixture's deterministic value of one reference tensor (the README's table)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    shape = tuple(shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if key.endswith("running_var"):
        value = rng.uniform(0.5, 1.5, shape)
    elif key.endswith("running_mean"):
        value = rng.normal(0.0, 0.1, shape)
    elif len(shape) <= 1:
        value = rng.uniform(0.5, 1.5, shape) if key.endswith(".weight") else rng.normal(0.0, 0.1, shape)
    else:
        value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    return np.asarray(value, np.float32)


@dataclass
class Fixture:
    name: str
    spec: dict
    inputs: list[np.ndarray]
    logits: np.ndarray

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The reference-keyed weights, in the reference's key order."""
        seed = self.spec["seed"]
        return {k: torch.from_numpy(fill_value(k, s, seed)) for k, s in self.spec["state_dict"].items()}


def load_fixture(fmt: str) -> Fixture:
    folder = ROOT / FIXTURES[fmt]
    spec = json.loads((folder / "fixture.json").read_text())
    inputs = [np.load(folder / name) for name in spec["inputs"]]
    return Fixture(FIXTURES[fmt], spec, inputs, np.load(folder / "logits.npy"))


def compare(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``(max |difference| / max |reference|, share of pixels whose argmax labels agree)``."""
    relative = float(np.abs(ours - reference).max() / np.abs(reference).max())
    agreement = float((ours.argmax(1) == reference.argmax(1)).mean())
    return relative, agreement
