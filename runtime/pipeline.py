"""``StreamPipeline``: sources → preprocess → engine → postprocess → sinks, K batches in flight.

One grabber thread per source (:mod:`edgeseg.runtime.multisource`) stamps each frame with its capture time and
keeps either the newest frame only (``live``: cameras and streams by default; the frames it overwrites are
counted as ``stale``) or a short FIFO (files: back-pressure, nothing lost). A batcher thread takes one frame
per source per step and hands the step to K workers, which fit the frames to the deploy size, run them as one
batch, and map the labels back; the main thread writes each source's results to its own sink in order through
a reorder buffer. A bundle exported with ``--frame-size`` does the fitting in its graph: frames of that size
go in untouched (another size is refused) and its labels, and its ``overlay`` when it has one, come back at the
frame's size for the sinks as they are (no host resize or blend). At most K steps are between being taken from
the sources and written (credits), so a slow sink makes a live source drop frames rather than queue them.
With several sources the runner takes a batch of N = the number of sources (exported with ``--batch N``) or a
dynamic batch (``--dynamic-batch``). A step without a frame from a source (it is being reopened, or it ended)
skips that slot with a dynamic batch; a static batch must be full, so the slot repeats that source's last frame
(black before its first) and the output is discarded.

Statistics are kept in bounded windows, so memory stays flat however long the stream: work stages per step
(``stages_ms``), the two queue waits (``queue_wait_ms``: capture → preprocessing, and postprocessing → sink),
and glass-to-glass latency (``glass_to_glass_ms``: capture → sink written, p50/p95/p99), overall and per
source. Ctrl-C stops cleanly: the sinks are closed with every frame written so far.

On a CPU the workers are threads calling ``runner.infer`` (ONNX Runtime releases the GIL). GPU runners with an
``infer`` that owns one CUDA stream per thread run the same way; the per-step stages they time with CUDA events
(``last_stages_ms``) are collected beside the host stages.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeseg.data.geometry import DEFAULT_RESIZE, labels_to_frame
from edgeseg.errors import EdgesegError
from edgeseg.runtime.feeds import image_geometry, make_feed, specs_take_depth
from edgeseg.runtime.multisource import Grabbed, Grabber, StepPicker
from edgeseg.runtime.runner import Runner
from edgeseg.runtime.sinks import FrameSink, Picture, SinkClosed
from edgeseg.runtime.sources import Frame, FrameSource
from edgeseg.runtime.stats import WINDOW, StageClock

log = logging.getLogger(__name__)
__all__ = ["StageClock", "StreamPipeline", "WINDOW"]
_DONE = object()
STAGES = ("decode", "preprocess", "h2d", "inference", "crf", "d2h", "postprocess", "sink")
GLASS_PERCENTILES = (50, 95, 99)


@dataclass
class _Step:
    index: int
    batch: list[Frame]  # what the runner is fed, slot by slot
    kept: list[tuple[int, Grabbed]]  # (slot, frame) whose output goes to a sink; filled slots are not here


@dataclass
class _Result:
    step: int
    # each kept frame with its labels at the frame's size and the graph's overlay (None: the sink blends)
    frames: list[tuple[Grabbed, np.ndarray, Picture | None]]
    stages: dict
    started: float  # perf_counter when preprocessing began
    finished: float  # ... and when postprocessing ended


class _PerSource:
    """What the summary reports for one source."""

    def __init__(self) -> None:
        self.frames_out = 0
        self.glass = StageClock()
        self.sink = StageClock()


class StreamPipeline:
    """Run ``runner`` over ``sources`` into ``sinks`` (paired in order; one of each is fine) with ``streams`` steps
    in flight; :meth:`run` returns the summary (frames in and out, dropped and stale, FPS, stage times, queue
    waits, glass-to-glass latency, and the same per source).

    ``live`` (one flag, or one per source; default: each source's own ``live``) keeps only the newest frame of a
    source. ``wait_ms`` is how long a step waits for a live source that has no frame yet once another has one.
    ``frame_in_graph`` (a bundle exported with ``--frame-size``): the graph takes the frames as they are (in
    OpenCV's BGR order with ``frame_bgr``) and returns labels and overlay at their size."""

    def __init__(self, runner: Runner, sources: FrameSource | Sequence[FrameSource],
                 sinks: FrameSink | Sequence[FrameSink], *, streams: int = 1, max_frames: int | None = None,
                 status: Callable[[dict], None] | None = None, status_interval: float = 0.5,
                 mode: str = DEFAULT_RESIZE, live: bool | Sequence[bool] | None = None,
                 wait_ms: float = 100.0, frame_in_graph: bool = False, frame_bgr: bool = False) -> None:
        self.mode = mode  # how frames are fitted to the deploy size and labels mapped back (the bundle's)
        # a --frame-size bundle: its graph takes the frames as they are (in BGR with frame_bgr) and returns
        # labels and overlay at their size
        self.frame_in_graph, self.frame_bgr = frame_in_graph, frame_bgr
        self.sources = [sources] if isinstance(sources, FrameSource) else list(sources)
        self.sinks = [sinks] if isinstance(sinks, FrameSink) else list(sinks)
        if not self.sources:
            raise EdgesegError("give at least one source")
        if len(self.sinks) != len(self.sources):
            raise EdgesegError(f"{len(self.sources)} sources and {len(self.sinks)} sinks: give one sink per source, "
                               f"paired in order")
        if streams < 1:
            raise EdgesegError("--streams must be at least 1")
        self.specs = runner.inputs()
        self.static_batch, self.size = image_geometry(runner.name, self.specs)
        n = len(self.sources)
        if self.static_batch is not None and self.static_batch != n:
            raise EdgesegError(f"{runner.name} takes batches of {self.static_batch} and the run has {n} source"
                               f"{'s' if n > 1 else ''}: export the bundle with --batch {n} or --dynamic-batch")
        if isinstance(live, bool) or live is None:
            self.live = [s.live if live is None else live for s in self.sources]
        else:
            self.live = list(live)
        if len(self.live) != n:
            raise EdgesegError(f"{len(self.live)} live flags for {n} sources")
        self.runner = runner
        self.streams, self.max_frames = streams, max_frames
        self.status, self.status_interval = status, status_interval
        self.wait_s = wait_ms / 1e3
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.credits = threading.Semaphore(streams)  # steps between being taken and written
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.errors: list[BaseException] = []
        self.grabbers = [Grabber(i, s, live=self.live[i], depth=streams, cond=self.cond, stop=self.stop,
                                 max_frames=max_frames) for i, s in enumerate(self.sources)]
        self.picker = StepPicker(self.grabbers, self.cond, self.stop, self.wait_s)
        self.clocks = {name: StageClock() for name in STAGES if name != "decode"}
        self.waits = {"to_batch": StageClock(), "to_sink": StageClock()}
        self.glass = StageClock()
        self.per_source = [_PerSource() for _ in self.sources]
        self.last: list[Frame | None] = [None] * n  # each source's last frame: the filler of a static batch
        self.steps = 0
        self.frames_out = 0

    @property
    def frames_in(self) -> int:
        """Frames the sources delivered so far (stale ones included)."""
        return sum(g.grabbed for g in self.grabbers)

    # -- threads -------------------------------------------------------------------------------------------
    def _filler(self, i: int) -> Frame:
        """What fills source ``i``'s slot of a static batch in a step without its frame (output discarded)."""
        last = self.last[i]
        if last is not None:
            return last
        depth = np.zeros(self.size, np.float32) if specs_take_depth(self.specs) else None
        return Frame(-1, np.zeros((*self.size, 3), np.uint8), "filler", depth)

    def _make_step(self, picked: list[Grabbed | None]) -> _Step:
        batch: list[Frame] = []
        kept: list[tuple[int, Grabbed]] = []
        for i, item in enumerate(picked):
            if item is not None:
                kept.append((len(batch), item))
                batch.append(item.frame)
                self.last[i] = item.frame
            elif self.static_batch is not None:
                batch.append(self._filler(i))
        return _Step(self.steps, batch, kept)

    def _batch(self) -> None:
        """Take one frame per source per step while a credit is free; hand the steps to the workers."""
        try:
            while not self.stop.is_set() and (self.max_frames is None or self.steps < self.max_frames):
                if not self.credits.acquire(timeout=0.1):
                    continue
                picked = self.picker.pick()
                if picked is None:
                    break
                self.inbox.put(self._make_step(picked))
                self.steps += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            for _ in range(self.streams):
                self.inbox.put(_DONE)

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    item = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                self.outbox.put(self._run_step(item))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            self.outbox.put(_DONE)

    def _run_step(self, step: _Step) -> _Result:
        t0 = time.perf_counter()
        bgr = self.frame_bgr and self.frame_in_graph  # a frame-size graph takes the frames in its own order
        feed = make_feed(self.specs, [f.in_order(bgr) for f in step.batch], self.size,
                         [f.depth for f in step.batch], self.mode, frame_in_graph=self.frame_in_graph)
        t1 = time.perf_counter()
        out = self.runner.infer(feed, check=False)
        t2 = time.perf_counter()
        if "labels" not in out:
            raise EdgesegError(f"{self.runner.name} has no 'labels' output")
        frames = [(g, *self._postprocess(out, slot, g.frame)) for slot, g in step.kept]
        t3 = time.perf_counter()
        stages = {"preprocess": (t1 - t0) * 1e3, "postprocess": (t3 - t2) * 1e3,
                  "inference": self.runner.last_stages_ms.get("compute", (t2 - t1) * 1e3)}
        for name in ("h2d", "crf", "d2h"):
            if name in self.runner.last_stages_ms:
                stages[name] = self.runner.last_stages_ms[name]
        return _Result(step.index, frames, stages, t0, t3)

    def _postprocess(self, out: dict, slot: int, frame: Frame) -> tuple[np.ndarray, Picture | None]:
        """Batch slot ``slot``'s labels at the frame's size (the graph's as they are, or mapped back on the host)
        and the graph's overlay when it drew one over this very frame (not over a host-resized copy)."""
        shape = frame.image.shape[:2]
        raw = np.asarray(out["labels"][slot], np.uint8)
        labels = raw if self.frame_in_graph else labels_to_frame(raw, shape, self.mode)
        overlay = out.get("overlay")
        if overlay is None or tuple(overlay.shape[1:3]) != tuple(shape):
            return labels, None
        return labels, Picture(overlay[slot], bgr=self.frame_bgr and self.frame_in_graph)

    # -- main thread ---------------------------------------------------------------------------------------
    def _emit(self, result: _Result) -> None:
        for name, ms in result.stages.items():
            self.clocks[name].add(ms)
        for grabbed, labels, overlay in result.frames:
            i = grabbed.source
            self.waits["to_batch"].add((result.started - grabbed.captured_at) * 1e3)
            t0 = time.perf_counter()
            self.waits["to_sink"].add((t0 - result.finished) * 1e3)
            self.sinks[i].write(grabbed.frame, labels, overlay)
            t1 = time.perf_counter()
            mine = self.per_source[i]
            mine.frames_out += 1
            mine.sink.add((t1 - t0) * 1e3)
            mine.glass.add((t1 - grabbed.captured_at) * 1e3)
            self.clocks["sink"].add((t1 - t0) * 1e3)
            self.glass.add((t1 - grabbed.captured_at) * 1e3)
            self.frames_out += 1
        self.credits.release()

    def _dropped(self) -> int:
        return sum(s.dropped for s in self.sources)

    def _stale(self) -> int:
        return sum(g.stale for g in self.grabbers)

    def _snapshot(self, start: float, recent: deque) -> dict:
        now = time.perf_counter()
        window = [t for t in recent if now - t <= 2.0]
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0
        glass = self.glass.recent
        return {"frames": self.frames_out, "fps": fps, "latency_ms": glass[-1] if glass else None,
                "dropped": self._dropped() + self._stale(),
                "in_flight": self.frames_in - self.frames_out - self._stale(),
                "elapsed_s": now - start}

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for source in self.sources:
            source.interrupt()  # a source in a reopen back-off gives up now
        for t in threads:
            t.join(timeout=10)

    def run(self) -> dict:
        """Run until every source ends, ``max_frames`` steps, Ctrl-C/SIGTERM or a closed window; the summary."""
        threads = [g.thread for g in self.grabbers]
        threads.append(threading.Thread(target=self._batch, name="batch", daemon=True))
        threads += [threading.Thread(target=self._work, name=f"stream-{k}", daemon=True) for k in range(self.streams)]
        start = time.perf_counter()
        pending: dict[int, _Result] = {}
        next_step, finished, interrupted, closed = 0, 0, False, False
        recent: deque = deque(maxlen=256)
        last_status = start
        for t in threads:
            t.start()
        try:
            while finished < self.streams:
                try:
                    item = self.outbox.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if item is _DONE:
                    finished += 1
                elif item is not None:
                    pending[item.step] = item
                    while next_step in pending:  # steps finish out of order with K workers; sinks get them in order
                        self._emit(pending.pop(next_step))
                        next_step += 1
                        recent.append(time.perf_counter())
                if self.status and time.perf_counter() - last_status >= self.status_interval:
                    self.status(self._snapshot(start, recent))
                    last_status = time.perf_counter()
        except KeyboardInterrupt:
            interrupted = True
        except SinkClosed:
            closed = True
        finally:
            self._shutdown(threads)
        if self.errors and not interrupted:
            raise self.errors[0]
        return self._summary(time.perf_counter() - start, interrupted, closed)

    def _summary(self, seconds: float, interrupted: bool, closed: bool) -> dict:
        stages = {"decode": StageClock.merged(g.decode for g in self.grabbers), **self.clocks}
        sources = []
        for source, sink, grabber, mine, live in zip(self.sources, self.sinks, self.grabbers, self.per_source,
                                                    self.live):
            sources.append({"source": source.name, "sink": sink.name, "live": live, "frames_in": grabber.grabbed,
                            "frames_out": mine.frames_out, "dropped": source.dropped, "stale": grabber.stale,
                            "missed_steps": grabber.missed, "reopened": int(getattr(source, "reopened", 0)),
                            "glass_to_glass_ms": mine.glass.summary(GLASS_PERCENTILES),
                            "sink_ms": mine.sink.summary()})
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self._dropped(),
                "stale": self._stale(), "steps": self.steps, "seconds": round(seconds, 3),
                "fps": round(self.frames_out / seconds, 2) if seconds > 0 else 0.0, "streams": self.streams,
                "batch": self.static_batch if self.static_batch is not None else "dynamic",
                "interrupted": interrupted, "window_closed": closed,
                "stages_ms": {k: c.summary() for k, c in stages.items() if c.count},
                "queue_wait_ms": {k: c.summary() for k, c in self.waits.items() if c.count},
                "glass_to_glass_ms": self.glass.summary(GLASS_PERCENTILES), "sources": sources}
