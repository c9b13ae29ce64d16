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


@pytest.fixture
def cli():
    return run_cli
