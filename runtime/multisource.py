"""Frames from one or several sources, one per source per step: a grabber thread per source and the step picker.

Each source is read on its own thread (:class:`Grabber`), which stamps every frame with its capture time: the
moment the source returned it, where glass-to-glass latency starts. What a grabber keeps depends on ``live``:

* **live** (the default for cameras, GStreamer pipelines and network streams, see :attr:`FrameSource.live`):
  one slot, overwritten by each new frame. A frame overwritten before the pipeline took it is counted in
  ``stale``: the pipeline always starts on the newest frame, and latency does not grow with a slow sink.
* **not live** (files and folders): a FIFO of ``depth`` frames; the grabber waits while it is full
  (back-pressure), so no frame is lost.

:class:`StepPicker` takes one frame per source for each step (one batch). It waits for every source that is
still open, except that a live source is waited for at most ``wait_s`` once another source has a frame, and
not at all after it missed a step, until it delivers again: a camera that died and is being reopened (its
source retries with back-off on the grabber's thread) costs the others one short wait, then none. A source
that ended (a file at its end) is simply absent. A source's slot in a step without its frame is left to the
pipeline: skipped with a dynamic batch, filled with its last frame (output discarded) with a static one.
Frames stay in order per source: a FIFO keeps them all, the live slot only ever holds a newer one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from edgeseg.runtime.sources import Frame, FrameSource
from edgeseg.runtime.stats import StageClock

log = logging.getLogger(__name__)


@dataclass
class Grabbed:
    """A frame as its grabber took it: ``captured_at`` is ``time.perf_counter()`` when the source returned it."""

    frame: Frame
    captured_at: float
    source: int  # the source's position (the order of --source)


class Grabber:
    """Reads ``source`` on its own thread into a one-slot mailbox (``live``) or a FIFO of ``depth`` frames.

    Every attribute the picker reads is guarded by ``cond`` (shared by all grabbers of a run and the picker);
    ``stop`` ends the thread. A non-live grabber stops after ``max_frames`` frames."""

    def __init__(self, index: int, source: FrameSource, *, live: bool, depth: int, cond: threading.Condition,
                 stop: threading.Event, max_frames: int | None = None) -> None:
        self.index, self.source, self.live = index, source, live
        self.depth = 1 if live else max(1, depth)
        self.cond, self.stop = cond, stop
        self.max_frames = None if live else max_frames
        self.frames: deque[Grabbed] = deque()
        self.grabbed = 0  # frames the source delivered
        self.stale = 0  # live: frames overwritten before the pipeline took them
        self.missed = 0  # steps that ran without a frame of this source while it was open
        self.late = False  # missed the last step and has not delivered since: not waited for
        self.ended = False
        self.error: BaseException | None = None
        self.decode = StageClock()  # written by this thread only
        self.thread = threading.Thread(target=self._run, name=f"grab-{index}", daemon=True)

    @property
    def done(self) -> bool:
        """Ended and every frame taken."""
        return self.ended and not self.frames

    def _run(self) -> None:
        try:
            frames = iter(self.source)
            while not self.stop.is_set() and (self.max_frames is None or self.grabbed < self.max_frames):
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                now = time.perf_counter()
                self.decode.add((now - t0) * 1e3)
                if not self._keep(Grabbed(frame, now, self.index)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the picker, then the main thread
            self.error = exc
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _keep(self, item: Grabbed) -> bool:
        with self.cond:
            if self.live:
                if self.frames:  # the one slot is overwritten: the older frame was never started
                    self.frames.popleft()
                    self.stale += 1
            else:
                while len(self.frames) >= self.depth:
                    if self.stop.is_set():
                        return False
                    self.cond.wait(0.1)
            self.frames.append(item)
            self.grabbed += 1
            self.late = False
            self.cond.notify_all()
        return True


class StepPicker:
    """One frame per source for each step (see the module docstring for who is waited for, and how long)."""

    def __init__(self, grabbers: Sequence[Grabber], cond: threading.Condition, stop: threading.Event,
                 wait_s: float = 0.1) -> None:
        self.grabbers, self.cond, self.stop, self.wait_s = list(grabbers), cond, stop, wait_s

    def _waited_for(self) -> list[Grabber]:
        """Open sources without a frame that this step still waits for."""
        return [g for g in self.grabbers if not g.frames and not g.ended and not (g.live and g.late)]

    def pick(self) -> list[Grabbed | None] | None:
        """A frame (or None) per source for the next step; None when every source is done or the run stops.
        A source's error (it gave up reopening) is raised here."""
        deadline: float | None = None
        with self.cond:
            while True:
                if self.stop.is_set():
                    return None
                for g in self.grabbers:
                    if g.error is not None:
                        raise g.error
                if all(g.done for g in self.grabbers):
                    return None
                waiting = self._waited_for()
                some = any(g.frames for g in self.grabbers)
                if some and not waiting:
                    break
                if some and all(g.live for g in waiting):
                    now = time.perf_counter()
                    deadline = now + self.wait_s if deadline is None else deadline
                    if now >= deadline:
                        break
                    self.cond.wait(min(0.1, deadline - now))
                    continue
                self.cond.wait(0.1)  # a file source always delivers or ends; with no frame at all, wait
            picked: list[Grabbed | None] = []
            for g in self.grabbers:
                item = g.frames.popleft() if g.frames else None
                if item is None and not g.ended:
                    if not g.late:
                        log.debug("%s has no frame for this step; not waiting for it until it delivers",
                                 g.source.name)
                    g.late = True
                    g.missed += 1
                picked.append(item)
            self.cond.notify_all()  # FIFO grabbers waiting for room
            return picked
