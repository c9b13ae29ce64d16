"""How busy the machine was with other work while a benchmark measured: the load average against the CPU count,
and (on Linux) the share of the machine's CPU time that other processes used.

``with CpuLoad() as load: ...`` then ``load.to_dict()``. The load average counts this process's own threads too
(a benchmark with one thread per core reads about the core count by itself), so the verdict uses the
other-processes share where ``/proc/stat`` gives it: the machine's busy time over the block minus this
process's CPU time, over the block's wall time times the CPU count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_STAT = Path("/proc/stat")
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest time is inside user)


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _machine_busy_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``), None where there is no such file."""
    try:
        with _STAT.open(encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values[i] for i in BUSY_FIELDS if i < len(values)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def _self_busy_s() -> float:
    t = os.times()
    return t.user + t.system


class CpuLoad:
    """The load while a block ran: ``loadavg_before`` / ``loadavg_after`` (1-minute), ``cpus``, and
    ``others_share``: the fraction of all CPUs' time other processes kept busy (None where unknown; counted in
    clock ticks, so only a block of a second or more gives a meaningful share), and the block's ``seconds``."""

    def __enter__(self) -> CpuLoad:
        self.cpus = os.cpu_count() or 1
        self.loadavg_before = _loadavg()
        self.loadavg_after: float | None = None
        self.others_share: float | None = None
        self.seconds = 0.0
        self._wall, self._machine, self._self = time.perf_counter(), _machine_busy_s(), _self_busy_s()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = wall = time.perf_counter() - self._wall
        machine = _machine_busy_s()
        self.loadavg_after = _loadavg()
        if self._machine is not None and machine is not None and wall > 0:
            others = (machine - self._machine) - (_self_busy_s() - self._self)
            self.others_share = round(min(1.0, max(0.0, others / (wall * self.cpus))), 3)

    def to_dict(self) -> dict:
        return {"cpus": self.cpus, "loadavg_before": self.loadavg_before, "loadavg_after": self.loadavg_after,
                "others_share": self.others_share, "seconds": round(self.seconds, 3)}
