"""``StreamPipeline``: source → preprocess → engine → postprocess → sink with K frames in flight.

A decode thread reads the source into a bounded queue (when every slot is busy it waits: back-pressure, so a
live camera drops frames in its driver instead of piling them up here). K workers each take a frame, resize it
to the deploy size, run it, and resize the labels back; the main thread writes results to the sink in source
order through a reorder buffer. A bundle exported with ``--frame-size`` does the resizing in its graph: frames of
that size go in untouched (another size is refused) and its labels, and its ``overlay`` when it has one, come
back at the frame's size for the sink as they are. Statistics are kept in bounded windows, so memory stays flat
however long the stream. Ctrl-C stops cleanly: the sink is closed with every frame written so far.

On a CPU the workers are threads calling ``runner.infer`` (ONNX Runtime releases the GIL). GPU runners with an
``infer`` that owns one CUDA stream per thread run the same way; the per-frame stages they time with CUDA events
(``last_stages_ms``) are collected beside the host stages.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeseg.data.geometry import DEFAULT_RESIZE, labels_to_frame
from edgeseg.errors import EdgesegError
from edgeseg.runtime.feeds import image_geometry, make_feed
from edgeseg.runtime.runner import Runner
from edgeseg.runtime.sinks import FrameSink, Picture, SinkClosed
from edgeseg.runtime.sources import Frame, FrameSource
from edgeseg.runtime.stats import latency_stats

log = logging.getLogger(__name__)
WINDOW = 2000  # samples kept per statistic
_DONE = object()


@dataclass
class StageClock:
    """Running count and mean of one stage, with the last ``WINDOW`` samples for percentiles."""

    count: int = 0
    total: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.recent.append(ms)

    def summary(self) -> dict | None:
        if not self.count:
            return None
        stats = latency_stats(self.recent)
        return {"mean": round(self.total / self.count, 3), "p50": round(stats["p50"], 3),
                "p99": round(stats["p99"], 3), "count": self.count}


@dataclass
class _Result:
    frame: Frame
    labels: np.ndarray
    decoded_at: float
    stages: dict
    overlay: Picture | None = None


class StreamPipeline:
    """Run ``runner`` over ``source`` into ``sink`` with ``streams`` frames in flight; :meth:`run` returns the
    summary (frames in and out, dropped, FPS, per-stage and end-to-end latency)."""

    def __init__(self, runner: Runner, source: FrameSource, sink: FrameSink, *, streams: int = 1,
                 max_frames: int | None = None, status: Callable[[dict], None] | None = None,
                 status_interval: float = 0.5, mode: str = DEFAULT_RESIZE, frame_in_graph: bool = False,
                 frame_bgr: bool = False) -> None:
        self.mode = mode  # how frames are fitted to the deploy size and labels mapped back (the bundle's)
        # a --frame-size bundle: its graph takes the frames as they are (in BGR with frame_bgr) and returns
        # labels and overlay at their size
        self.frame_in_graph, self.frame_bgr = frame_in_graph, frame_bgr
        if streams < 1:
            raise EdgesegError("--streams must be at least 1")
        static_batch, self.size = image_geometry(runner.name, runner.inputs())
        if static_batch not in (None, 1):
            raise EdgesegError(f"the pipeline runs one frame per inference; {runner.name} takes batches of "
                               f"{static_batch} (re-export with --batch 1 or --dynamic-batch)")
        self.runner, self.source, self.sink = runner, source, sink
        self.specs = runner.inputs()
        self.streams, self.max_frames = streams, max_frames
        self.status, self.status_interval = status, status_interval
        self.inbox: queue.Queue = queue.Queue(maxsize=streams)
        self.outbox: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.clocks = {name: StageClock() for name in
                       ("decode", "preprocess", "h2d", "inference", "crf", "d2h", "postprocess", "sink",
                        "end_to_end")}
        self.frames_in = 0
        self.frames_out = 0

    # -- threads -------------------------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.inbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        try:
            frames = iter(self.source)
            while not self.stop.is_set() and (self.max_frames is None or self.frames_in < self.max_frames):
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                now = time.perf_counter()
                self.clocks["decode"].add((now - t0) * 1e3)
                self.frames_in += 1
                if not self._put((frame, now)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            for _ in range(self.streams):
                self._put(_DONE)

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    item = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                frame, decoded_at = item
                t0 = time.perf_counter()
                image = frame.in_order(self.frame_bgr and self.frame_in_graph)
                feed = make_feed(self.specs, [image], self.size, [frame.depth], self.mode,
                                 frame_in_graph=self.frame_in_graph)
                t1 = time.perf_counter()
                out = self.runner.infer(feed, check=False)
                t2 = time.perf_counter()
                if "labels" not in out:
                    raise EdgesegError(f"{self.runner.name} has no 'labels' output")
                labels, overlay = self._postprocess(out, frame)
                t3 = time.perf_counter()
                stages = {"preprocess": (t1 - t0) * 1e3, "postprocess": (t3 - t2) * 1e3,
                          "inference": self.runner.last_stages_ms.get("compute", (t2 - t1) * 1e3)}
                for name in ("h2d", "crf", "d2h"):
                    if name in self.runner.last_stages_ms:
                        stages[name] = self.runner.last_stages_ms[name]
                self.outbox.put(_Result(frame, labels, decoded_at, stages, overlay))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.errors.append(exc)
            self.stop.set()
        finally:
            self.outbox.put(_DONE)

    def _postprocess(self, out: dict, frame: Frame) -> tuple[np.ndarray, Picture | None]:
        """The labels at the frame's size (the graph's as they are, or mapped back on the host) and the graph's
        overlay when it drew one over this very frame (not over a host-resized copy)."""
        shape = frame.image.shape[:2]
        if self.frame_in_graph:
            labels = np.asarray(out["labels"][0], np.uint8)
        else:
            labels = labels_to_frame(np.asarray(out["labels"][0], np.uint8), shape, self.mode)
        overlay = out.get("overlay")
        if overlay is None or tuple(overlay.shape[1:3]) != tuple(shape):
            return labels, None
        return labels, Picture(overlay[0], bgr=self.frame_bgr and self.frame_in_graph)

    # -- main thread ---------------------------------------------------------------------------------------
    def _emit(self, result: _Result) -> None:
        t0 = time.perf_counter()
        self.sink.write(result.frame, result.labels, result.overlay)
        t1 = time.perf_counter()
        for name, ms in result.stages.items():
            self.clocks[name].add(ms)
        self.clocks["sink"].add((t1 - t0) * 1e3)
        self.clocks["end_to_end"].add((t1 - result.decoded_at) * 1e3)
        self.frames_out += 1

    def _snapshot(self, start: float, recent: deque) -> dict:
        now = time.perf_counter()
        window = [t for t in recent if now - t <= 2.0]
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0
        e2e = self.clocks["end_to_end"].recent
        return {"frames": self.frames_out, "fps": fps, "latency_ms": e2e[-1] if e2e else None,
                "dropped": self.source.dropped, "in_flight": self.frames_in - self.frames_out,
                "elapsed_s": now - start}

    def run(self) -> dict:
        threads = [threading.Thread(target=self._decode, name="decode", daemon=True)]
        threads += [threading.Thread(target=self._work, name=f"stream-{k}", daemon=True) for k in range(self.streams)]
        start = time.perf_counter()
        pending: dict[int, _Result] = {}
        next_index, finished, interrupted, closed = 0, 0, False, False
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
                    pending[item.frame.index] = item
                    while next_index in pending:
                        self._emit(pending.pop(next_index))
                        next_index += 1
                        recent.append(time.perf_counter())
                if self.status and time.perf_counter() - last_status >= self.status_interval:
                    self.status(self._snapshot(start, recent))
                    last_status = time.perf_counter()
        except KeyboardInterrupt:
            interrupted = True
        except SinkClosed:
            closed = True
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=10)
        if self.errors and not interrupted:
            raise self.errors[0]
        seconds = time.perf_counter() - start
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self.source.dropped,
                "seconds": round(seconds, 3), "fps": round(self.frames_out / seconds, 2) if seconds > 0 else 0.0,
                "streams": self.streams, "interrupted": interrupted, "window_closed": closed,
                "stages_ms": {k: c.summary() for k, c in self.clocks.items() if c.count}}
