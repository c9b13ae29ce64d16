"""Cached parameter and FLOP counts of the model zoo, so ``edgeseg models`` prints its table without torch.

Counting a model's parameters and FLOPs means building it (torch, every model module: seconds and hundreds of
MiB for the zoo). The figures only change when a model's code changes, so they are kept in a cache keyed by

* the model's name, its keyword options, its class count and the input size, and
* a hash of the model's source: its module and every ``edgeseg.models`` module it imports (statically, to any
  depth), the registry and the FLOP counter.

``edgeseg/model_figures.json`` is committed with every model at its default size and 19 classes, together
with what the registry says of each model (paper, default size, reference figures) under a hash of the model
modules; ``edgeseg models --refresh`` rewrites it. Figures for other sizes or class counts are computed on
demand and kept in the user's cache (``$EDGESEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeseg``, else
``~/.cache/edgeseg``). A key whose source hash is not the current one is never read: a model edited without
a refresh is counted afresh, never reported from its old code.

Pure Python: this module imports torch only in :func:`compute`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = "edgeseg-model-figures"
VERSION = 1
PACKAGE = Path(__file__).resolve().parent  # the edgeseg package
MODELS = PACKAGE / "models"
COMMITTED = PACKAGE / "model_figures.json"
DEFAULT_NUM_CLASSES = 19
# Counted with every model: how a model is built from the registry, and how FLOPs are counted.
ALWAYS = ("registry.py", "profile.py")
ENTRY_KEYS = frozenset(("name", "module", "paper", "family", "realtime", "input_size", "reference_params",
                        "reference_flops", "reference_source"))
USER_CACHE_ENTRIES = 2000  # the user's cache keeps at most this many figures (the newest)


def _module_file(module: str, models: Path) -> Path | None:
    """The file of ``edgeseg.models.X.Y`` under ``models`` (a module or a package's ``__init__.py``)."""
    if module != "edgeseg.models" and not module.startswith("edgeseg.models."):
        return None
    parts = module.split(".")[2:]
    base = models.joinpath(*parts) if parts else models
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imports(path: Path, models: Path) -> frozenset[Path]:
    """The ``edgeseg.models`` files ``path`` imports: ``import a.b``, ``from a.b import c`` (``c`` a module or a
    name), and relative imports."""
    package = ".".join(["edgeseg", "models", *path.relative_to(models).parent.parts])
    return _parsed_imports(path.read_text(encoding="utf-8"), package, models)


@functools.lru_cache(maxsize=256)
def _parsed_imports(text: str, package: str, models: Path) -> frozenset[Path]:
    tree = ast.parse(text)
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from a.b import c``: the module a.b.c when c is one, else the names of a.b
            names = [f"{base}.{alias.name}" if _module_file(f"{base}.{alias.name}", models) else base
                     for alias in node.names]
        for name in names:
            file = _module_file(name, models)
            if file is not None:
                found.add(file)
    return frozenset(found)


def source_files(module: str, models: Path = MODELS) -> list[Path]:
    """Every file a model defined in ``module`` is built from: the module, what it imports within
    ``edgeseg.models`` (to any depth), and :data:`ALWAYS`. The package's own ``__init__.py`` (which imports
    every model) is left out unless a module imports it by name."""
    start = _module_file(module, models)
    if start is None:
        raise ValueError(f"{module} is not a module of edgeseg.models")
    seen = {start} | {models / name for name in ALWAYS if (models / name).is_file()}
    todo = list(seen)
    while todo:
        for file in _imports(todo.pop(), models):
            if file not in seen:
                seen.add(file)
                todo.append(file)
    return sorted(seen)


def _hash_files(files, root: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def source_hash(module: str, models: Path = MODELS) -> str:
    """sha256 of :func:`source_files` (names and contents): any edit to a model's code changes it."""
    return _hash_files(source_files(module, models), models)


def registry_hash(models: Path = MODELS) -> str:
    """sha256 of the files that say which models exist and what the registry records of them: the package's
    ``__init__.py``, the registry, and every module with a ``@register_model``."""
    files = [models / "__init__.py", models / "registry.py"]
    files += [f for f in sorted(models.glob("*.py")) if "@register_model" in f.read_text(encoding="utf-8")]
    return _hash_files(sorted(set(files)), models)


def figure_key(name: str, num_classes: int, size, kwargs: dict | None, digest: str) -> str:
    """The cache key of one model's figures: name, class count, input size, options and source hash."""
    options = json.dumps(kwargs or {}, sort_keys=True, separators=(",", ":"))
    return f"{name}|classes={num_classes}|size={int(size[0])}x{int(size[1])}|kwargs={options}|src={digest[:20]}"


@dataclass(frozen=True)
class Figures:
    """What building a model tells: parameters of the deploy graph, with the aux heads, and eval FLOPs."""

    params: int
    params_with_aux: int
    flops: int

    def to_dict(self) -> dict:
        return {"params": self.params, "params_with_aux": self.params_with_aux, "flops": self.flops}

    @classmethod
    def from_dict(cls, d: dict) -> Figures:
        return cls(int(d["params"]), int(d["params_with_aux"]), int(d["flops"]))


def compute(name: str, num_classes: int, size, kwargs: dict | None = None) -> Figures:
    """Build ``name`` on torch's ``meta`` device (shapes only: no weights, no compute) and count."""
    import torch

    from edgeseg.models import build, count_flops, count_parameters

    with torch.device("meta"):
        model = build(name, num_classes=num_classes, **(kwargs or {}))
    return Figures(count_parameters(model), count_parameters(model, deploy=False),
                   count_flops(model, tuple(size)))


def registry_entries() -> list[dict]:
    """What the registry records of each model, as the committed cache stores it (imports torch)."""
    from edgeseg.models import list_models, model_info

    entries = []
    for name in list_models():
        info = model_info(name)
        entries.append({
            "name": name, "module": info.builder.__module__, "paper": info.paper, "family": info.family,
            "realtime": info.realtime, "input_size": list(info.input_size),
            "reference_params": info.reference_params,
            "reference_flops": ([info.reference_flops[0], list(info.reference_flops[1])]
                                if info.reference_flops else None),
            "reference_source": info.reference_source})
    return entries


def user_cache_path() -> Path:
    """Where figures computed on demand are kept."""
    if os.environ.get("EDGESEG_CACHE_DIR"):
        return Path(os.environ["EDGESEG_CACHE_DIR"]) / "model_figures.json"
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "edgeseg" / "model_figures.json"


def _read(path: Path) -> dict:
    """A cache document, or an empty one when it is missing or not one (a cache is never trusted blindly: a bad
    one is recomputed, not an error)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("ignoring the model figure cache %s: %s", path, exc)
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        return {}
    return doc


def _document(figures: dict, registry: dict | None = None) -> str:
    """The cache as JSON, one model or figure per line (a refresh shows as a readable diff)."""
    def block(items) -> str:
        return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in items) + "\n }"

    head = {"format": FORMAT, "version": VERSION,
            "note": "parameters and FLOPs of the model zoo; rewrite with `edgeseg models --refresh`"}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    if registry is not None:
        models = [(m["name"], m) for m in registry["models"]]
        lines.append(f' "registry": {{"sha256": {json.dumps(registry["sha256"])}, "models": {block(models)}}}')
    lines.append(f' "figures": {block(sorted(figures.items()))}')
    return "{\n" + ",\n".join(lines) + "\n}\n"


class FigureCache:
    """The committed figures and the user's, read once; new figures are remembered for
    :meth:`save_user`."""

    def __init__(self, committed: Path | None = None, user: Path | None = None, models: Path | None = None) -> None:
        self.committed_path = committed or COMMITTED
        self.user_path, self.models = user or user_cache_path(), models or MODELS
        self.committed = _read(self.committed_path)
        self.user = _read(self.user_path)
        self._hashes: dict[str, str] = {}
        self._new: dict[str, dict] = {}

    def entries(self) -> list[dict] | None:
        """The registry's entries as committed, or None when the model modules changed since (or none were)."""
        registry = self.committed.get("registry")
        if not isinstance(registry, dict) or registry.get("sha256") != registry_hash(self.models):
            return None
        entries = registry.get("models")
        if not isinstance(entries, dict) or not all(isinstance(e, dict) and ENTRY_KEYS <= e.keys()
                                                    for e in entries.values()):
            return None
        return list(entries.values())

    def key(self, entry: dict, num_classes: int, size, kwargs: dict | None = None) -> str:
        module = entry["module"]
        if module not in self._hashes:
            self._hashes[module] = source_hash(module, self.models)
        return figure_key(entry["name"], num_classes, size, kwargs, self._hashes[module])

    def get(self, key: str) -> Figures | None:
        for doc in (self._new, self.committed.get("figures", {}), self.user.get("figures", {})):
            if isinstance(doc, dict) and key in doc:
                try:
                    return Figures.from_dict(doc[key])
                except (KeyError, TypeError, ValueError):
                    continue
        return None

    def put(self, key: str, figures: Figures) -> None:
        self._new[key] = figures.to_dict()

    def counted(self, key: str) -> bool:
        """Whether ``key``'s figures were counted by this process (not read from a cache)."""
        return key in self._new

    def save_user(self) -> None:
        """Add the figures computed on demand to the user's cache (best effort: a cache that cannot be written
        only costs the next run the same computation)."""
        from edgeseg.fileio import write_text_atomic

        old = self.user.get("figures", {}) if isinstance(self.user.get("figures"), dict) else {}
        committed = self.committed.get("figures", {}) if isinstance(self.committed.get("figures"), dict) else {}
        merged = {**old, **{k: v for k, v in self._new.items() if k not in committed}}
        if merged == old:
            return
        keep = list(merged.items())[-USER_CACHE_ENTRIES:]
        try:
            self.user_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.user_path, _document(dict(keep)))
        except Exception as exc:  # noqa: BLE001 - any failure to cache must not fail the listing
            log.debug("model figures not cached in %s: %s", self.user_path, exc)

    def save_committed(self, entries: list[dict], figures: dict[str, Figures]) -> None:
        """Rewrite the committed cache: ``entries`` under the current registry hash, and ``figures`` (each model
        at its default size and class count)."""
        from edgeseg.fileio import write_text_atomic

        registry = {"sha256": registry_hash(self.models), "models": entries}
        text = _document({k: f.to_dict() for k, f in figures.items()}, registry)
        write_text_atomic(self.committed_path, text)
        self.committed = json.loads(text)
