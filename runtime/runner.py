"""The runner contract every backend implements (after Polygraphy's runners).

A runner is a context manager. ``inputs()`` / ``outputs()`` describe the I/O tensors; ``infer(feed)`` takes a
dict of numpy arrays and returns a dict of numpy arrays; ``last_latency_ms`` is the time of the last inference
alone (no host-side conversion), measured with ``perf_counter`` on a CPU and device events on a GPU.
A runner that can split that time fills ``last_stages_ms`` (``h2d``, ``compute``, ``d2h``), and one that
owns device memory reports its peak through ``device_memory_mib()``. Both timings are per thread: K threads
(the pipeline's K streams) can share one runner and each reads the times of its own last call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple  # ints, or a str for a dynamic dimension

    def check(self, array: np.ndarray) -> None:
        if np.dtype(self.dtype) != array.dtype:
            raise EdgesegError(f"input {self.name!r} must be {self.dtype}, got {array.dtype}")
        if len(self.shape) != array.ndim or any(isinstance(d, int) and d != a for d, a in zip(self.shape, array.shape)):
            want = "x".join(str(d) for d in self.shape)
            got = "x".join(str(d) for d in array.shape)
            raise EdgesegError(f"input {self.name!r} must be {want}, got {got}")


class Runner:
    """Base class: subclasses implement ``activate``, ``deactivate``, ``_infer``, ``inputs``, ``outputs``."""

    backend = "base"
    times_itself = False  # True when _infer sets last_latency_ms from device events
    # What the backend computes in when that is not simply the file's precision, read from the backend after
    # loading (OpenVINO: "f32" for an fp16 file, or how many layers of an INT8 file run in u8); None: as the file
    compute: str | None = None

    def __init__(self, name: str) -> None:
        self._local = threading.local()
        self.name = name
        self.last_latency_ms: float | None = None
        self.last_stages_ms: dict[str, float] = {}
        self.is_active = False

    @property
    def last_latency_ms(self) -> float | None:
        return getattr(self._local, "latency", None)

    @last_latency_ms.setter
    def last_latency_ms(self, value: float | None) -> None:
        self._local.latency = value

    @property
    def last_stages_ms(self) -> dict[str, float]:
        return getattr(self._local, "stages", {})

    @last_stages_ms.setter
    def last_stages_ms(self, value: dict[str, float]) -> None:
        self._local.stages = value

    def __enter__(self):
        self.activate()
        self.is_active = True
        return self

    def __exit__(self, *exc):
        self.is_active = False
        self.deactivate()
        return False

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def inputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def outputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def device_memory_mib(self) -> float | None:
        """Peak device memory this runner used (None on a CPU, or when the backend cannot tell)."""
        return None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def infer(self, feed: dict[str, np.ndarray], check: bool = True) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: use the runner as a context manager (with ... as runner)")
        if check:
            specs = {s.name: s for s in self.inputs()}
            missing = set(specs) - set(feed)
            if missing:
                raise EdgesegError(f"missing input(s): {', '.join(sorted(missing))}")
            for name, array in feed.items():
                if name not in specs:
                    raise EdgesegError(f"unknown input {name!r}; the model takes {', '.join(specs)}")
                specs[name].check(array)
        start = time.perf_counter()
        out = self._infer(feed)
        if not self.times_itself:
            self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return out


class SlotPool:
    """Execution slots (a stream with its own buffers) shared by the threads that call one GPU runner:
    ``take()`` lends a free slot and blocks while all are busy."""

    def __init__(self) -> None:
        self.all: list = []
        self._free: queue.Queue = queue.Queue()

    def add(self, slot) -> None:
        self.all.append(slot)
        self._free.put(slot)

    @contextmanager
    def take(self) -> Iterator:
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    def clear(self) -> None:
        self.all, self._free = [], queue.Queue()
