"""What machine a measurement was taken on: CPU, cores, OS, GPU, and package versions.

Reads versions from package metadata rather than importing (so asking about torch never loads it).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("edgeseg", "numpy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt",
            "tensorrt-cu12", "tensorrt-cu13", "cuda-python", "cuda-bindings", "pycuda",
            "opencv-python-headless", "matplotlib")


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


def cuda_driver_version() -> str | None:
    """The CUDA version the driver supports, from ``nvidia-smi``'s banner; None without a GPU."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*([0-9.]+)", out)
    return match.group(1) if match else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def parse_nvpmodel(text: str) -> dict:
    """``nvpmodel -q`` output ("NV Power Mode: MAXN" then the mode id) → ``{"name", "id"}``."""
    info: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith("nv power mode:"):
            info["name"] = line.split(":", 1)[1].strip()
        elif line.isdigit():
            info["id"] = int(line)
    return info


_JETSON_GPU_DEVFREQ = ("gv11b", "ga10b", "gp10b", "gb10b", "gpu")


def jetson_info(root: Path = Path("/"), nvpmodel_output: str | None = None) -> dict | None:
    """Board, L4T release, power mode and clocks of a Jetson (None elsewhere). Everything is read from
    files under ``root`` and from ``nvpmodel -q``; what is not readable is left out."""
    release = _read(root / "etc/nv_tegra_release")
    board = _read(root / "proc/device-tree/model")
    if release is None and not (board and "jetson" in board.lower()):
        return None
    info: dict = {"board": board, "l4t": release.splitlines()[0] if release else None}
    if nvpmodel_output is None and shutil.which("nvpmodel") and root == Path("/"):
        try:
            nvpmodel_output = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            nvpmodel_output = None
    if nvpmodel_output:
        info["power_mode"] = parse_nvpmodel(nvpmodel_output)
    for dev in sorted((root / "sys/class/devfreq").glob("*")):
        if any(key in dev.name for key in _JETSON_GPU_DEVFREQ):
            clocks = {k: _read(dev / f"{k}_freq") for k in ("cur", "min", "max")}
            info["gpu_clock_mhz"] = {k: int(v) // 1_000_000 for k, v in clocks.items() if v and v.isdigit()}
            break
    cpu_khz = [_read(p) for p in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))]
    if cpu_khz:
        info["cpu_clock_mhz"] = [int(v) // 1000 for v in cpu_khz if v and v.isdigit()]
    return info


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
        "cuda_driver": cuda_driver_version(),
        "jetson": jetson_info(),
        "packages": package_versions(),
    }
