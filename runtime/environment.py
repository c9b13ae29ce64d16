"""What machine a measurement was taken on: CPU, cores, OS, GPU, and package versions.

Reads versions from package metadata rather than importing (so asking about torch never loads it).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
from importlib import metadata

PACKAGES = ("edgeseg", "numpy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cuda-python",
            "pycuda", "opencv-python-headless")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names=PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def nvidia_gpus() -> list[dict]:
    """GPUs reported by ``nvidia-smi`` (name, driver, memory, compute capability); empty without one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    query = "name,driver_version,memory.total,compute_cap"
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mib": parts[2], "compute_capability": parts[3]})
    return gpus


def collect_environment() -> dict:
    """A JSON-ready description of this machine and the software measured on it."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "gpus": nvidia_gpus(),
        "packages": package_versions(),
    }
