"""Numbers a benchmark reports: latency statistics, the accuracy/speed Pareto front, and the running clocks of the
stream pipeline (numpy only)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 90, 99)


def latency_stats(samples_ms: Sequence[float]) -> dict:
    """p50 / p90 / p99 / mean / min / max / std (ms) and the sample count.

    Percentiles use linear interpolation between order statistics (numpy's default, as trtexec's
    percentiles do); with fewer than 100 samples p99 is close to the maximum, and the count says so.
    """
    values = np.asarray(list(samples_ms), dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("latency samples must be finite and non-negative")
    stats = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
    stats.update(mean=float(values.mean()), min=float(values.min()), max=float(values.max()),
                 std=float(values.std(ddof=1)) if values.size > 1 else 0.0, n=int(values.size))
    return stats


# A row's latencies are flagged as noisy above these coefficients of variation (std / mean). trtexec warns when
# the GPU compute time's exceeds 1% (TensorRT's samples/common/sampleReporting.cpp), a figure for device-event
# timing on a GPU; a CPU timed with perf_counter shares its cores with the OS, and a quiet run of the demo model
# on two cores reads 1-5%: 10% flags a row that a scheduler stall or another job disturbed, not ordinary jitter.
CV_LIMITS = {"device events": 0.01, "trtexec --exportTimes": 0.01}
CV_LIMIT_HOST = 0.10
# Other processes using more than this share of all CPUs while a row was timed make it "loaded": a backend on
# every core then loses about that share of its time, as much as the host CV limit allows for noise.
LOAD_LIMIT = 0.10
LOAD_MIN_SECONDS = 1.0  # /proc/stat counts clock ticks (10 ms): a shorter window gives no meaningful share


def coefficient_of_variation(latency: dict) -> float | None:
    """std / mean of a row's ``latency_ms`` (None without both, or with a zero mean)."""
    std, mean = latency.get("std"), latency.get("mean")
    if not isinstance(std, (int, float)) or not isinstance(mean, (int, float)) or mean <= 0:
        return None
    return float(std) / float(mean)


def cv_limit(timing: str | None) -> float:
    """The coefficient of variation above which latencies timed by ``timing`` are flagged as noisy."""
    return CV_LIMITS.get(timing or "", CV_LIMIT_HOST)


def machine_loaded(load: dict | None) -> str | None:
    """Why the machine counts as loaded while a row was timed (see :class:`edgeseg.runtime.cpuload.CpuLoad`),
    or None: other processes used more than :data:`LOAD_LIMIT` of all CPUs over a window long enough to tell,
    or the 1-minute load average exceeded the CPU count before the row started."""
    if not isinstance(load, dict):
        return None
    cpus, share, before = load.get("cpus"), load.get("others_share"), load.get("loadavg_before")
    if (isinstance(share, (int, float)) and share > LOAD_LIMIT
            and (load.get("seconds") or 0) >= LOAD_MIN_SECONDS):
        return f"other processes used {100 * share:.0f}% of the {cpus} CPUs"
    if isinstance(before, (int, float)) and isinstance(cpus, int) and before > cpus:
        return f"load average {before:.1f} on {cpus} CPUs"
    return None


def noise_notes(row: dict) -> list[str]:
    """What makes a row's timing untrustworthy: a coefficient of variation over the limit for its timing
    method, and a loaded machine. Empty when neither."""
    notes = []
    cv, limit = coefficient_of_variation(row.get("latency_ms") or {}), cv_limit(row.get("timing"))
    if cv is not None and cv > limit:
        notes.append(f"noisy: latency CV {100 * cv:.1f}% > {100 * limit:.0f}%")
    if (why := machine_loaded(row.get("load"))) is not None:
        notes.append(f"machine loaded: {why}")
    return notes


def pareto_front(points: Sequence[tuple[float, float] | None], tolerance: float = 0.0) -> list[bool]:
    """For (speed, accuracy) pairs where higher is better in both, whether each point is on the Pareto front:
    no other point is at least as fast and as accurate and strictly better in one. Accuracies within
    ``tolerance`` count as equal (an FP16 engine 1e-6 more accurate than FP32 is not "more accurate").
    ``None`` (no accuracy) is never on the front; identical points are all on it."""

    def beats(q, p) -> bool:
        return q[0] >= p[0] and q[1] >= p[1] - tolerance and (q[0] > p[0] or q[1] > p[1] + tolerance)

    return [p is not None and not any(q is not None and j != i and beats(q, p) for j, q in enumerate(points))
            for i, p in enumerate(points)]


def throughput_fps(frames: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("elapsed time must be positive")
    return frames / seconds


WINDOW = 2000  # samples a StageClock keeps for its percentiles


@dataclass
class StageClock:
    """Running count and mean of one timed quantity (ms), with the last ``WINDOW`` samples for percentiles.

    Memory stays flat however long the stream; the mean covers every sample, the percentiles the window."""

    count: int = 0
    total: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.recent.append(ms)

    @classmethod
    def merged(cls, clocks: Iterable[StageClock]) -> StageClock:
        """One clock holding the counts, totals and recent samples of ``clocks`` (e.g. one per source)."""
        out = cls()
        for clock in clocks:
            out.count += clock.count
            out.total += clock.total
            out.recent.extend(list(clock.recent))
        return out

    def summary(self, percentiles: Sequence[int] = (50, 99)) -> dict | None:
        """``mean``, the ``p<N>`` asked for and ``count``, rounded to µs; None before the first sample."""
        if not self.count:
            return None
        values = np.asarray(list(self.recent), dtype=np.float64)
        out = {"mean": round(self.total / self.count, 3)}
        out.update({f"p{p}": round(float(np.percentile(values, p)), 3) for p in percentiles})
        out["count"] = self.count
        return out
