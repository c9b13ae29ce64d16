"""What the training CPU can do natively, read from ``/proc/cpuinfo`` (Linux; elsewhere: nothing)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 instructions oneDNN uses for bfloat16 convolutions


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first processor's ``flags`` (x86) of ``cpuinfo`` (default: this machine's)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether bfloat16 arithmetic runs natively here (elsewhere it would be emulated: no speed measured to gain)."""
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)
