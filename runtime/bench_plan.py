"""Which (artifact, backend, precision) combinations a benchmark runs: resolved from bundles and files.

``backend="auto"`` takes every backend installed here that has a file to run; naming a backend that is not
installed, or a precision no artifact has, is an error that says what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.runtime.backends import BACKENDS as BACKEND_TABLE
from edgeseg.runtime.backends import PRECISIONS, backend_missing, backends_of_kind, backends_of_suffix
from edgeseg.runtime.bundle import is_bundle, open_bundle

log = logging.getLogger(__name__)

BACKENDS = tuple(BACKEND_TABLE)


@dataclass(frozen=True)
class Target:
    """One benchmark row to measure: ``file`` run by ``backend`` at ``precision``."""

    artifact: Path  # the bundle or file the user named
    model: str
    backend: str
    precision: str
    file: Path  # the file that runs
    bundle: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.model} {self.precision} {self.backend}"


def _precision_from_name(name: str) -> str:
    for precision in ("fp16", "int8"):
        if f".{precision}." in name or f"_{precision}." in name:
            return precision
    return "fp32"


def _candidates(path: Path, torch_fp16: bool = False) -> tuple[str, Path | None, list[tuple[str, str, Path]]]:
    """(model name, bundle root or None, [(backend, precision, file)]) for one artifact; the checkpoint also
    runs in fp16 when ``torch_fp16`` (torch on a GPU)."""
    if is_bundle(path):
        bundle = open_bundle(path)
        chosen = None if path.is_dir() else path.name
        found = []
        for name, entry in sorted(bundle.files.items()):
            if chosen is not None and name != chosen:
                continue
            for backend in backends_of_kind(entry.kind):  # an ONNX file: ONNX Runtime and OpenVINO rows
                found.append((backend, entry.model_precision, bundle.root / name))
                if backend == "torch" and torch_fp16:
                    found.append((backend, "fp16", bundle.root / name))
        if chosen is not None and not found:
            raise EdgesegError(f"{path} is not a model file of its bundle (ONNX, engine or checkpoint)")
        return bundle.model.name, bundle.root, found
    lone = [b for b in backends_of_suffix(path.suffix) if b != "torch"]
    if not lone:
        raise EdgesegError(f"{path}: expected a bundle folder, an .onnx file or a TensorRT engine")
    return path.stem.split(".")[0], None, [(b, _precision_from_name(path.name), path) for b in lone]


def plan_targets(paths: Sequence[str | Path], backend: str = "auto", precision: str = "all",
                 missing: Callable[[str], str | None] = backend_missing, torch_fp16: bool = False) -> list[Target]:
    """Every combination to measure, in the order given (within an artifact: backend, then precision).
    ``torch_fp16``: the torch backend runs on a GPU, where the fp32 checkpoint also runs in half precision."""
    if backend != "auto" and backend not in BACKENDS:
        raise EdgesegError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
    if precision != "all" and precision not in PRECISIONS:
        raise EdgesegError(f"unknown precision {precision!r}; choose all, {', '.join(PRECISIONS)}")
    if backend != "auto" and (reason := missing(backend)):
        raise EdgesegError(f"backend {backend} cannot run here: {reason}")
    wanted_backends = BACKENDS if backend == "auto" else (backend,)
    wanted_precisions = PRECISIONS if precision == "all" else (precision,)
    unavailable = {b: missing(b) for b in wanted_backends}
    targets: list[Target] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise EdgesegError(f"{path} not found")
        model, root, found = _candidates(path, torch_fp16)
        chosen = []
        for b in wanted_backends:
            for p in wanted_precisions:
                for fb, fp, file in found:
                    if (fb, fp) != (b, p):
                        continue
                    if unavailable[b]:
                        log.info("skipping %s with %s: %s", file.name, b, unavailable[b])
                        continue
                    chosen.append(Target(path, model, b, p, file, root))
        if not chosen:
            order = sorted(found, key=lambda f: (BACKENDS.index(f[0]), PRECISIONS.index(f[1])
                                                 if f[1] in PRECISIONS else len(PRECISIONS)))
            have = ", ".join(dict.fromkeys(f"{fp} {BACKEND_TABLE[fb].kind}" for fb, fp, _ in order)) or "no model files"
            raise EdgesegError(f"{path} has nothing to bench with backend {backend} and precision {precision} "
                               f"(it has {have})")
        targets.extend(chosen)
    return targets
