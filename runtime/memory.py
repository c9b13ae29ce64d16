"""Host memory of this process: resident set size now and at its peak, with the peak resettable on Linux.

A benchmark that measures several engines in one process resets the peak before each engine
(``/proc/self/clear_refs`` ← ``5``, Linux ≥ 4.0), so each row's peak is its own. Where the reset is not
possible the peak is the process's since start, and :attr:`PeakMemory.isolated` says so.

Each block's increase is measured from its own baseline, taken as the block starts, after garbage collection
and after the C allocator handed freed pages back (glibc ``malloc_trim``): memory an earlier engine freed
but the allocator kept would otherwise be reused without showing as growth, and the increase would shrink
with each engine measured before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        with _STATUS.open(encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def release_freed_memory() -> None:
    """Collect garbage and return the C heap's free pages to the OS (glibc ``malloc_trim``; a no-op elsewhere)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)


def reset_peak_rss() -> bool:
    """Set the peak RSS back to the current RSS; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_mib`` (process peak RSS during the block) and
    ``m.increase_mib`` (peak minus the RSS at entry: what the block itself needed)."""

    def __enter__(self) -> PeakMemory:
        release_freed_memory()
        self.isolated = reset_peak_rss()
        self.start_mib = rss_mib()
        self.peak_mib: float | None = None
        self.increase_mib: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mib = peak_rss_mib()
        if self.isolated and self.start_mib is not None:
            self.increase_mib = max(0.0, self.peak_mib - self.start_mib)

    def to_dict(self) -> dict:
        return {"host_peak_rss_mib": _round(self.peak_mib), "host_rss_increase_mib": _round(self.increase_mib),
                "host_rss_baseline_mib": _round(self.start_mib), "host_peak_isolated": self.isolated}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
