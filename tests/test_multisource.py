"""Several sources in one batch, live sources, glass-to-glass latency: the stream pipeline on tiny generated frames.

Every frame carries a marker in its pixels (its index in bits along the top row, its source in the bottom row),
and the threshold model maps pixels to labels one to one, so the labels a sink receives say which frame of which
source they were computed from: order and pairing are read from the outputs themselves.
"""

import json
import threading
import time

import numpy as np
import pytest
from bench_fixtures import PALETTE, H, W, make_threshold_bundle, reference_labels, write_video

from edgeseg.errors import EdgesegError
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.overlay import load_label_png
from edgeseg.runtime.pipeline import StreamPipeline
from edgeseg.runtime.runner import TensorSpec
from edgeseg.runtime.sinks import FrameSink
from edgeseg.runtime.sources import CaptureSource, Frame, FrameSource

DARK, BRIGHT = 25, 230


def marker_image(index: int, source: int) -> np.ndarray:
    image = np.full((H, W, 3), DARK, np.uint8)
    for bit in range(W):
        if index >> bit & 1:
            image[0, bit] = BRIGHT
    image[H - 1] = BRIGHT if source else DARK
    return image


def read_marker(labels: np.ndarray) -> tuple[int, int]:
    """(frame index, source) from labels (or any H×W map where the marker's bright pixels are true)."""
    return sum(1 << bit for bit in range(W) if labels[0, bit]), int(labels[H - 1, 0])


class Frames(FrameSource):
    """``count`` marked frames (endless when None), one every ``period`` seconds."""

    def __init__(self, name: str, source: int, count: int | None, period: float = 0.0, live: bool = False):
        super().__init__(name)
        self.source, self.count, self.period, self.live = source, count, period, live

    def __iter__(self):
        i = 0
        while self.count is None or i < self.count:
            if self.period:
                time.sleep(self.period)
            yield Frame(i, marker_image(i, self.source), str(i))
            i += 1


class Recording(FrameSink):
    """Checks each result against the frame it came with, and records (time, index, source) from the labels."""

    def __init__(self, name: str, delay: float = 0.0, stop_at: int | None = None):
        super().__init__(name, PALETTE)
        self.seen: list[tuple[float, int, int]] = []
        self.delay, self.stop_at = delay, stop_at

    def _write(self, frame, labels):
        np.testing.assert_array_equal(labels, reference_labels(frame.image, 127.0))
        if self.delay:
            time.sleep(self.delay)
        self.seen.append((time.perf_counter(), *read_marker(labels)))
        if self.stop_at is not None and len(self.seen) == self.stop_at:
            raise KeyboardInterrupt

    @property
    def indices(self) -> list[int]:
        return [i for _, i, _ in self.seen]


class SlowEvenSteps:
    """Runner wrapper: steps whose first frame has an even index take 20 ms longer (with two workers they finish
    out of order); records each batch's size."""

    def __init__(self, runner):
        self.runner, self.name, self.last_stages_ms, self.sizes = runner, runner.name, {}, []

    def inputs(self):
        return self.runner.inputs()

    def infer(self, feed, check=True):
        self.sizes.append(feed["image"].shape[0])
        if read_marker(feed["image"][0, ..., 0] > 127)[0] % 2 == 0:
            time.sleep(0.02)
        return self.runner.infer(feed, check)


@pytest.mark.parametrize("batch", [2, "batch"])
def test_two_sources_run_batched_in_order_per_source(tmp_path, batch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0}, batch=batch)
    sinks = [Recording("a"), Recording("b")]
    with load_runner(bundle, threads=1) as runner:
        slow = SlowEvenSteps(runner)
        summary = StreamPipeline(slow, [Frames("a", 0, 9), Frames("b", 1, 6)], sinks, streams=2).run()
    assert sinks[0].indices == list(range(9)) and sinks[1].indices == list(range(6))  # in order, every frame
    assert {s for _, _, s in sinks[0].seen} == {0} and {s for _, _, s in sinks[1].seen} == {1}  # not swapped
    # a static batch is always full (b's slot repeats its last frame once it ended); a dynamic one shrinks
    assert sorted(slow.sizes) == ([2] * 9 if batch == 2 else [1] * 3 + [2] * 6)
    assert summary["batch"] == (2 if batch == 2 else "dynamic") and summary["steps"] == 9
    assert summary["frames_in"] == summary["frames_out"] == 15 and summary["stale"] == summary["dropped"] == 0
    a, b = summary["sources"]
    assert (a["source"], a["sink"], a["frames_in"], a["frames_out"]) == ("a", "a", 9, 9)
    assert (b["source"], b["sink"], b["frames_in"], b["frames_out"]) == ("b", "b", 6, 6)
    assert a["missed_steps"] == b["missed_steps"] == 0 and a["glass_to_glass_ms"]["count"] == 9
    assert set(b["glass_to_glass_ms"]) == {"mean", "p50", "p95", "p99", "count"}


class FrameGraphRunner:
    """A stand-in for a --frame-size bundle taking batches of ``batch`` H×W frames: labels at the frame's size
    (the threshold, no host mapping needed) and an overlay (each frame's channels reversed); records the feeds."""

    name, last_stages_ms = "frame-graph", {}

    def __init__(self, batch: int):
        self.batch, self.feeds = batch, []

    def inputs(self):
        return [TensorSpec("image", "uint8", (self.batch, H, W, 3))]

    def infer(self, feed, check=True):
        image = feed["image"]
        self.feeds.append(image.copy())
        return {"labels": (image[..., 0] > 127).astype(np.uint8), "overlay": image[..., ::-1].copy()}


class GraphPictures(FrameSink):
    """Records what reaches the sink from a frame-size graph: labels and the graph's overlay, checked per frame."""

    def __init__(self, name: str):
        super().__init__(name, PALETTE)
        self.seen: list[tuple[int, int]] = []

    def _write(self, frame, labels, overlay=None):
        assert overlay is not None and not overlay.bgr  # the graph's own picture, no host blend
        np.testing.assert_array_equal(overlay.image, frame.image[..., ::-1])  # drawn over this very frame
        np.testing.assert_array_equal(labels, frame.image[..., 0] > 127)  # as the graph returned them
        self.seen.append(read_marker(labels))


def test_a_frame_size_bundle_takes_several_sources_untouched_and_returns_each_its_own(tmp_path):
    runner = FrameGraphRunner(2)
    sinks = [GraphPictures("a"), GraphPictures("b")]
    summary = StreamPipeline(runner, [Frames("a", 0, 5), Frames("b", 1, 3)], sinks, frame_in_graph=True).run()
    assert [i for i, _ in sinks[0].seen] == list(range(5)) and [i for i, _ in sinks[1].seen] == list(range(3))
    assert {s for _, s in sinks[0].seen} == {0} and {s for _, s in sinks[1].seen} == {1}  # each slot its own
    assert summary["frames_out"] == 8 and len(runner.feeds) == 5
    np.testing.assert_array_equal(runner.feeds[0][0], marker_image(0, 0))  # fed untouched, in batch order
    np.testing.assert_array_equal(runner.feeds[0][1], marker_image(0, 1))


class Taller(FrameSource):
    """One frame two rows taller than the bundle's frame size."""

    def __iter__(self):
        yield Frame(0, np.zeros((H + 2, W, 3), np.uint8), "0")


def test_a_frame_size_bundle_refuses_a_source_of_another_size_in_one_line():
    runner = FrameGraphRunner(2)
    pipeline = StreamPipeline(runner, [Frames("a", 0, 2), Taller("tall")], [GraphPictures("a"), GraphPictures("b")],
                              frame_in_graph=True)
    with pytest.raises(EdgesegError, match=f"{H + 2}x{W} frame reached a bundle exported for {H}x{W}") as err:
        pipeline.run()
    assert "\n" not in str(err.value) and not runner.feeds  # never resized on the host and run


class PacedCapture:
    """A VideoCapture stand-in delivering marked grey frames ``first``, ``first + 1``... every 10 ms, then failing."""

    def __init__(self, first: int, count: int):
        self.next, self.end = first, first + count

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def read(self):
        if self.next >= self.end:
            return False, None
        time.sleep(0.01)
        self.next += 1
        return True, marker_image(self.next - 1, 0)

    def get(self, prop):
        return 0

    def release(self):
        pass


@pytest.mark.parametrize("batch", [2, "batch"])
def test_a_camera_that_dies_and_comes_back_does_not_stall_the_other(tmp_path, batch):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0}, batch=batch)
    captures = iter([PacedCapture(0, 5), PacedCapture(5, 1000)])
    # camera a: 5 frames, then dead for 0.5 s until its reopen succeeds; camera b: a frame every 10 ms
    a = CaptureSource("camera a", lambda: next(captures), live=True, max_reopen=3, sleep=lambda s: time.sleep(0.5))
    b = Frames("camera b", 1, None, period=0.01, live=True)
    sinks = [Recording("a"), Recording("b")]
    with load_runner(bundle, threads=1) as runner:
        summary = StreamPipeline(runner, [a, b], sinks, max_frames=100).run()
    for sink in sinks:
        assert sink.indices == sorted(set(sink.indices))  # in order (live: some skipped, none repeated)
    before, after = sinks[0].seen[4][0], next(t for t, i, _ in sinks[0].seen if i >= 5)
    assert sinks[0].indices[:5] == [0, 1, 2, 3, 4] and len(sinks[0].indices) > 10  # it came back
    assert sum(before < t < after for t, _, _ in sinks[1].seen) >= 15, "b stalled while a was reopened"
    sa, sb = summary["sources"]
    assert sa["reopened"] == 1 and sa["missed_steps"] >= 15 and sa["frames_out"] == len(sinks[0].seen)
    assert sb["frames_out"] == len(sinks[1].seen) == summary["steps"] == 100


@pytest.mark.parametrize("live", [True, False])
def test_live_keeps_the_newest_frame_on_a_slow_sink_and_counts_the_stale(tmp_path, live):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    sink = Recording("slow", delay=0.03)
    with load_runner(bundle, threads=1) as runner:
        summary = StreamPipeline(runner, Frames("clip", 0, 30, period=0.005), sink, live=live).run()
    assert summary["frames_in"] == 30 and summary["sources"][0]["live"] is live
    if live:
        assert summary["stale"] > 10 and summary["frames_out"] + summary["stale"] == 30
        assert sink.indices == sorted(set(sink.indices)) and sink.indices[-1] == 29  # the newest frame is kept
    else:
        assert summary["stale"] == 0 and sink.indices == list(range(30))
    assert summary["sources"][0]["stale"] == summary["stale"]


def test_live_defaults_to_the_source_kind(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0}, batch="batch")
    camera = CaptureSource("camera 0", lambda: PacedCapture(0, 3), live=True, max_reopen=0, sleep=lambda s: None)
    with load_runner(bundle, threads=1) as runner:
        pipeline = StreamPipeline(runner, [camera, Frames("clip", 1, 3)], [Recording("a"), Recording("b")])
    assert pipeline.live == [True, False]


def test_glass_to_glass_starts_when_the_frame_is_grabbed(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    with load_runner(bundle, threads=1) as runner:
        summary = StreamPipeline(runner, Frames("clip", 0, 12), Recording("slow", delay=0.03)).run()
    # a file is not live: the next frame is grabbed while the sink works on this one and waits its turn
    waited, glass, sink = (summary["queue_wait_ms"]["to_batch"], summary["glass_to_glass_ms"],
                           summary["stages_ms"]["sink"])
    assert waited["p50"] > 20
    assert glass["p50"] >= sink["p50"] + waited["p50"] - 1 and glass["count"] == 12
    assert "end_to_end" not in summary["stages_ms"]  # latency is reported apart from the stages


def test_ctrl_c_stops_every_thread_at_once_even_with_a_camera_reopening(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0}, batch=2)
    captures = iter([PacedCapture(0, 3)])
    dead = CaptureSource("camera a", lambda: next(captures, None), live=True)  # never comes back: long back-off
    before = set(threading.enumerate())
    with load_runner(bundle, threads=1) as runner:
        t0 = time.perf_counter()
        summary = StreamPipeline(runner, [dead, Frames("camera b", 1, None, period=0.01, live=True)],
                                 [Recording("a"), Recording("b", stop_at=40)], streams=2).run()
        took = time.perf_counter() - t0
    assert summary["interrupted"] and summary["sources"][1]["frames_out"] == 39
    assert took < 3, f"stopping took {took:.1f} s: the camera's back-off was not cut short"
    assert not [t.name for t in set(threading.enumerate()) - before if t.is_alive()]


def test_interrupt_ends_a_reopen_back_off(tmp_path):
    captures = iter([PacedCapture(0, 2)])
    source = CaptureSource("camera a", lambda: next(captures, None), live=True)
    threading.Timer(0.7, source.interrupt).start()  # in the second back-off (0.5 s, then 1 s)
    t0 = time.perf_counter()
    assert [f.index for f in source] == [0, 1]  # ends quietly: no "did not come back" error
    assert time.perf_counter() - t0 < 1.25  # at once, not at the end of the back-off (1.5 s)


# -- the command ---------------------------------------------------------------------------------------------

def _videos(tmp_path):
    a = write_video(tmp_path / "a.avi", [BRIGHT if i % 3 == 0 else DARK for i in range(7)], fourcc="MJPG")
    b = write_video(tmp_path / "b.avi", [DARK if i % 2 == 0 else BRIGHT for i in range(4)], fourcc="MJPG")
    return a, b


def test_run_cli_two_videos_one_batch_each_into_its_sink(tmp_path, cli_here):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0}, batch=2)
    a, b = _videos(tmp_path)
    r = cli_here("run", str(bundle), "--source", str(a), "--source", str(b), "--sink", f"labels:{tmp_path / 'la'}",
                 "--sink", f"labels:{tmp_path / 'lb'}", "--streams", "2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["batch"] == 2 and summary["frames_out"] == 11 and summary["source"] == [str(a), str(b)]
    assert [(s["frames_in"], s["frames_out"], s["live"]) for s in summary["sources"]] == [(7, 7, False), (4, 4, False)]
    for folder, bright in (("la", lambda i: i % 3 == 0), ("lb", lambda i: i % 2 == 1)):
        files = sorted((tmp_path / folder).glob("*.png"))
        assert [bool(load_label_png(f).mean() > 0.5) for f in files] == [bright(i) for i in range(len(files))]
    assert len(list((tmp_path / "la").glob("*.png"))) == 7
    text = cli_here("run", str(bundle), "--source", str(a), "--source", str(b), "--live")
    assert text.returncode == 0, text.stderr
    assert "g2g p50" in text.stdout and "glass to glass" in text.stdout  # the per-source table


REFUSALS = [
    ("one-sink-two-sources", "2 --source and 1 --sink: give one --sink per --source"),
    ("three-sinks-two-sources", "2 --source and 3 --sink: give one --sink per --source"),
    ("batch1-two-sources", "takes batches of 1 and the run has 2 sources: export the bundle with --batch 2"),
    ("batch2-one-source", "takes batches of 2 and the run has 1 source: export the bundle with --batch 1"),
    ("one-folder-two-sinks", "write to the same place"),
]


@pytest.mark.parametrize("case,message", REFUSALS, ids=[case for case, _ in REFUSALS])
def test_run_cli_refuses_mismatches_in_one_line(tmp_path, cli_here, case, message):
    one = make_threshold_bundle(tmp_path / "b1", {"fp32": 127.0})
    two = make_threshold_bundle(tmp_path / "b2", {"fp32": 127.0}, batch=2)
    a, b = _videos(tmp_path)
    out = f"labels:{tmp_path / 'out'}"
    args = {"one-sink-two-sources": [two, "--source", a, "--source", b, "--sink", out],
            "three-sinks-two-sources": [two, "--source", a, "--source", b] + ["--sink", "null"] * 3,
            "batch1-two-sources": [one, "--source", a, "--source", b],
            "batch2-one-source": [two, "--source", a],
            "one-folder-two-sinks": [two, "--source", a, "--source", b, "--sink", out, "--sink", out]}[case]
    r = cli_here("run", *map(str, args))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
