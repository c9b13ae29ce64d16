import logging
import os
import shutil
import subprocess
import sys

import pytest

# Every test runs on the CPU with deterministic, small thread counts (CI has 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "2")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed ``edgeseg`` command (falling back to ``python -m edgeseg``)."""
    exe = shutil.which("edgeseg")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "edgeseg", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


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


def _cuda_missing() -> str | None:
    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.cuda import get_cuda

    try:
        get_cuda()
    except EdgesegError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    """``cuda`` and ``tensorrt`` tests run where those work and are skipped, with the reason, elsewhere."""
    from edgeseg.runtime.load import backend_missing

    needs = {"cuda": None, "tensorrt": None}
    if any("cuda" in item.keywords or "tensorrt" in item.keywords for item in items):
        needs["cuda"] = _cuda_missing()
        needs["tensorrt"] = backend_missing("tensorrt") or needs["cuda"]
    for item in items:
        for marker, reason in needs.items():
            if marker in item.keywords and reason:
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {reason}"))
