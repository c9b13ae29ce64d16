"""A small progress display for long work (training, validation, calibration, benchmarks): a live bar on a
terminal, periodic log lines otherwise. Pure Python.

Bars nest: a bar that starts while another one's live line is open (validation inside training, say) first
ends that line, and the outer bar resumes on a fresh line. Call :func:`end_live_line` before logging while a
bar may be live, so the log line does not land in the middle of the bar.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("edgeseg.progress")

_live: Progress | None = None  # the bar whose line is open on the terminal, if any


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def end_live_line() -> None:
    """End the open line of a live bar, if any (before a log line or another bar)."""
    global _live
    if _live is not None:
        _live.stream.write("\n")
        _live.stream.flush()
        _live = None


class Progress:
    """``total`` steps of work called ``desc``; :meth:`update` by whole or fractional steps (shown rounded
    down), :meth:`close` at the end."""

    def __init__(self, total: float, desc: str = "", *, start: float = 0, stream=None, log_interval: float = 10.0,
                 enabled: bool = True) -> None:
        self.total, self.desc, self.count = total, desc, start
        self.stream = stream or sys.stderr
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.log_interval = log_interval
        self._start_count = start
        self._t0 = self._last_log = time.monotonic()
        self.postfix: dict = {}

    def eta(self) -> float:
        done = self.count - self._start_count
        if done <= 0:
            return float("nan")
        return (time.monotonic() - self._t0) / done * (self.total - self.count)

    def line(self) -> str:
        frac = min(self.count / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        eta = self.eta()
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        eta_text = _duration(eta) if eta == eta else "?"
        return (f"{self.desc} [{bar}] {int(self.count)}/{int(self.total)} elapsed "
                f"{_duration(time.monotonic() - self._t0)} eta {eta_text} {extra}").rstrip()

    def update(self, n: float = 1, **postfix) -> None:
        global _live
        self.count += n
        self.postfix.update(postfix)
        if not self.enabled:
            return
        now = time.monotonic()
        if self.live:
            if _live is not self:
                end_live_line()
                _live = self
            self.stream.write("\r" + self.line()[:200])
            self.stream.flush()
        elif now - self._last_log >= self.log_interval or self.count >= self.total:
            log.info(self.line())
            self._last_log = now

    def close(self) -> None:
        if self.enabled and self.live and _live is self:
            end_live_line()
