import ctypes
import gc
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest

# Every test runs on the CPU with deterministic, small thread counts (CI has 2 cores): 2 threads, or under
# pytest-xdist (the default run, see pyproject.toml) the cores shared among the workers, so that two workers on
# two cores do not each start two torch threads. An OMP_NUM_THREADS of the caller's own is left as it is.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if "OMP_NUM_THREADS" not in os.environ or os.environ.get("EDGESEG_TESTS_SET_THREADS") == "1":
    os.environ["OMP_NUM_THREADS"] = str(max(1, min(2, (os.cpu_count() or 2) // _WORKERS)))
    os.environ["EDGESEG_TESTS_SET_THREADS"] = "1"  # the xdist workers inherit it: they may set their own


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed ``edgeseg`` command (falling back to ``python -m edgeseg``)."""
    exe = shutil.which("edgeseg")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "edgeseg", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


HEAVY_TEST_S = 5.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """After a test that took over :data:`HEAVY_TEST_S` (an export of a 100M-parameter model, say), collect its
    garbage and hand the freed heap back to the OS (glibc's ``malloc_trim``). Otherwise a worker keeps GBs of
    freed but resident memory, which a later test allocating 64 MiB is served from: its RSS peak does not move
    (tests/test_bench_stats.py::test_peak_memory_sees_an_allocation), and two such workers crowd a small CI box."""
    start = time.perf_counter()
    result = yield
    if time.perf_counter() - start > HEAVY_TEST_S:
        gc.collect()
        if sys.platform.startswith("linux"):
            try:
                ctypes.CDLL(None).malloc_trim(0)
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
                pass
    return result


@pytest.fixture(autouse=True)
def _detach_cli_logging():
    """An in-process ``edgeseg.cli.main.main()`` points the root logger at the test's captured stderr; later
    tests must not write to that closed stream."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(handler)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def cli_here(capsys):
    """``edgeseg ARGS`` run in this process (``edgeseg.cli.main.main``) with the same result as :func:`run_cli`
    (exit code, stdout, stderr) at a fraction of the cost: no interpreter and torch start-up, and torch's
    exporter stays warm. For every test except those of the installed command itself."""
    from hostile_harness import run

    def run_here(*args: str) -> subprocess.CompletedProcess:
        outcome = run(capsys, *args)
        return subprocess.CompletedProcess(["edgeseg", *args], outcome.code, outcome.stdout, outcome.stderr)

    return run_here


def small_size(name: str) -> tuple[int, int]:
    """The deploy size the registry-wide tests use for ``name``: 64×128, or multiples of its output stride."""
    from edgeseg.models import model_info

    d = model_info(name).size_divisor
    return (max(64, d), max(128, 2 * d))


# Classic models whose registry-wide export (100M+ parameters: export, onnxsim, verification, checkpoint) takes
# 15-30 s each on 2 cores: together over two minutes of the default run's six. They are marked heavy (CI runs
# them in a second step, `python -m pytest -m heavy`); ACNet stays (the RGB-D tests share its bundle).
HEAVY_EXPORTS = ("dfanet_a", "deeplabv2", "deeplabv3", "deeplabv3plus", "dilated_context", "danet", "fastfcn", "fcn8s",
                 "fcn16s", "fcn32s", "pspnet", "refinenet")


def registry_param(name: str):
    """``name`` as a parameter of a registry-wide test that exports it: grouped with the other tests of its
    bundle, and heavy for the big classic models."""
    marks = [bundle_group(name)] + ([pytest.mark.heavy] if name in HEAVY_EXPORTS else [])
    return pytest.param(name, marks=marks)


def bundle_group(name: str) -> pytest.MarkDecorator:
    """Mark a test that uses ``registry_bundle(name)``: with ``--dist loadgroup`` (the default run) every such test
    runs on one xdist worker, which then exports ``name`` once for all of them."""
    return pytest.mark.xdist_group(f"bundle-{name}")


@dataclass
class RegistryBundle:
    bundle: Any  # edgeseg.runtime.bundle.Bundle
    model: Any  # the exported torch model (eval mode) for the real-time models, else None


def _export_registry_bundle(root, name: str) -> RegistryBundle:
    """``name`` at :func:`small_size`, 5 classes (ACNet: 8 and verified on synthetic RGB-D scenes too).

    A real-time model is exported from a checkpoint whose BatchNorm running statistics were moved away from
    their initial values (3 training-mode forwards), with ``logits`` as a second output: a graph that folds
    BatchNorm wrongly cannot pass for a right one, and tests/test_model_contract.py compares those logits with
    the torch model's. A classic model (100M+ parameters for the VGG ones) is exported with random weights.
    """
    import torch

    from edgeseg.export.pipeline import ExportOptions, export_bundle
    from edgeseg.models import create, model_info, save_checkpoint

    size = small_size(name)
    if model_info(name).realtime:
        torch.manual_seed(0)
        model = create(name, num_classes=5).train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(2, model.in_channels, *size) * 2 + 0.5)
        model.eval()
        checkpoint = save_checkpoint(root / "model.pt", model, name=name)
        bundle = export_bundle(root / "b", checkpoint=str(checkpoint),
                               options=ExportOptions(input_size=size, outputs=("labels", "logits")))
        return RegistryBundle(bundle, model)
    options = ExportOptions(input_size=size, num_classes=5)
    if name == "acnet":  # the RGB-D model: tests/test_rgbd.py checks the depth through verification and the CLI
        options = ExportOptions(input_size=size, num_classes=8, data="synthetic", data_images=2,
                                outputs=("labels", "logits"))
    return RegistryBundle(export_bundle(root / "b", model_name=name, options=options), None)


@pytest.fixture(scope="session")
def registry_bundle(tmp_path_factory):
    """``registry_bundle(name)``: the bundle of ``name`` (see :func:`_export_registry_bundle`), exported once per
    worker and shared read-only by tests/test_export.py, test_model_contract.py and test_rgbd.py (copy it to
    change it). Mark each user with :func:`bundle_group`."""
    cache: dict[str, RegistryBundle] = {}

    def get(name: str) -> RegistryBundle:
        if name not in cache:
            cache[name] = _export_registry_bundle(tmp_path_factory.mktemp(f"bundle-{name}"), name)
        return cache[name]

    return get


def _cuda_missing() -> str | None:
    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.cuda import get_cuda

    try:
        get_cuda()
    except EdgesegError as exc:
        return str(exc)
    return None


def _group_by_shared_fixture(items) -> None:
    """Under ``--dist loadgroup``, give a test that takes a module-scoped fixture of its own module (a bundle
    exported once for the module, say) the xdist group of that fixture, so that one worker builds it once rather
    than each worker that runs one of its tests. Tests with an explicit ``xdist_group`` keep theirs, and
    parametrized fixtures (a name per test, cheap) group nothing."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        for name in info.argnames:
            defs = info.name2fixturedefs.get(name, ())
            fixturedef = defs[-1] if defs else None
            if (fixturedef is not None and fixturedef.scope == "module" and not fixturedef.params
                    and fixturedef.baseid == item.nodeid.split("::")[0]):
                item.add_marker(pytest.mark.xdist_group(f"{fixturedef.baseid}::{name}"))
                break


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """``cuda``, ``tensorrt`` and ``openvino`` tests run where those work and are skipped, with the reason,
    elsewhere; tests sharing a module's fixture share an xdist worker (:func:`_group_by_shared_fixture`)."""
    from edgeseg.runtime.backends import backend_missing

    _group_by_shared_fixture(items)

    needs = {"cuda": None, "tensorrt": None, "openvino": None}
    if any("cuda" in item.keywords or "tensorrt" in item.keywords for item in items):
        needs["cuda"] = _cuda_missing()
        needs["tensorrt"] = backend_missing("tensorrt") or needs["cuda"]
    if any(item.get_closest_marker("openvino") for item in items):
        needs["openvino"] = backend_missing("openvino")
    for item in items:
        for marker, reason in needs.items():
            if reason and (item.get_closest_marker(marker) if marker == "openvino" else marker in item.keywords):
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {reason}"))
