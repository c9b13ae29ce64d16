"""Sources, sinks and the stream pipeline on a CPU with ONNX Runtime, on generated files."""

import json
import time

import numpy as np
import pytest
from bench_fixtures import PALETTE, make_threshold_bundle, write_video
from PIL import Image

from edgeseg.errors import EdgesegError
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.memory import rss_mib
from edgeseg.runtime.overlay import load_label_png, save_label_png
from edgeseg.runtime.pipeline import StreamPipeline
from edgeseg.runtime.sinks import FolderSink, FrameSink, NullSink, VideoSink, open_sink
from edgeseg.runtime.sources import CaptureSource, FolderSource, Frame, open_source

cv2 = pytest.importorskip("cv2")
H, W = 32, 48


def is_bright(i: int) -> bool:
    return i % 3 == 0


def make_video(path, count: int, fps: float = 10.0):
    return write_video(path, [230 if is_bright(i) else 25 for i in range(count)], fps, size=(H, W))


@pytest.fixture
def bundle(tmp_path):
    return make_threshold_bundle(tmp_path / "bundle", {"fp32": 127.0})


class FakeCapture:
    """A VideoCapture stand-in: ``script`` is a list of frames (arrays) and failures (None)."""

    def __init__(self, script, frame_count=0):
        self.script, self.frame_count, self.position, self.released = list(script), frame_count, 0, False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def read(self):
        if not self.script:
            return False, None
        item = self.script.pop(0)
        self.position += 1
        return (item is not None), item

    def get(self, prop):
        return {5: 25.0, 7: self.frame_count, 1: self.position}.get(prop, 0)

    def release(self):
        self.released = True


def _frame(v):
    return np.full((4, 6, 3), v, np.uint8)


def test_live_source_reopens_with_backoff():
    captures = [FakeCapture([_frame(1), _frame(2), None]), FakeCapture([_frame(3)])]
    sleeps = []
    opened = iter([captures[0], None, None, captures[1]])

    def opener():  # the camera comes back once, then never again
        c = next(opened, None)
        return c if c is not None else FakeCapture.__new__(_Closed)

    source = CaptureSource("camera 0", opener, live=True, max_reopen=3, sleep=sleeps.append)
    frames = []
    with pytest.raises(EdgesegError, match="dropped out and did not come back after 3 tries"):
        for frame in source:
            frames.append(int(frame.image[0, 0, 0]))
    assert frames == [1, 2, 3]  # BGR → RGB keeps a grey value
    assert sleeps == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0]  # back-off while it fails, reset after it came back
    assert source.reopened == 1 and source.fps == 25.0


class _Closed(FakeCapture):
    def __init__(self):
        pass

    def isOpened(self):  # noqa: N802
        return False


def test_file_source_skips_a_bad_frame_in_the_middle():
    capture = FakeCapture([_frame(1), None, _frame(3)], frame_count=3)
    source = CaptureSource("clip.mp4", lambda: capture, live=False)
    assert [int(f.image[0, 0, 0]) for f in source] == [1, 3]
    assert source.dropped == 1


def test_folder_source_counts_undecodable_files(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((4, 6, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "1b.jpg").write_bytes(b"not a jpeg")
    source = FolderSource(tmp_path)
    assert [(f.index, f.name) for f in source] == [(0, "0.png"), (1, "1.png"), (2, "2.png")]
    assert source.dropped == 1


def test_open_source_errors(tmp_path):
    with pytest.raises(EdgesegError, match="not found"):
        open_source(str(tmp_path / "missing.mp4"))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "one.png")
    with pytest.raises(EdgesegError, match="one image; give its folder"):
        open_source(str(tmp_path / "one.png"))
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(EdgesegError, match="cannot open source"):
        open_source(str(tmp_path / "broken.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgesegError, match="has no images"):
        open_source(str(tmp_path / "empty"))


def test_video_file_round_trip_through_sinks(tmp_path):
    video = make_video(tmp_path / "in.mp4", 7)
    source = open_source(str(video))
    assert source.fps == pytest.approx(10.0)
    labels = np.zeros((H, W), np.uint8)
    with VideoSink(tmp_path / "out.mp4", PALETTE, source.fps) as sink:
        for frame in source:
            sink.write(frame, labels)
    assert sink.written == 7
    assert cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 7
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_video_sink_refuses_a_size_change_and_leaves_nothing(tmp_path):
    with pytest.raises(EdgesegError, match="frames of one size"), VideoSink(tmp_path / "o.mp4", PALETTE) as sink:
        sink.write(Frame(0, np.zeros((8, 8, 3), np.uint8), "0"), np.zeros((8, 8), np.uint8))
        sink.write(Frame(1, np.zeros((8, 10, 3), np.uint8), "1"), np.zeros((8, 10), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_sink_specs(tmp_path):
    assert isinstance(open_sink("null", PALETTE), NullSink)
    with pytest.raises(EdgesegError, match="unknown sink"):
        open_sink("out.txt", PALETTE)
    with pytest.raises(EdgesegError, match="does not exist"):
        open_sink(str(tmp_path / "nope" / "out.mp4"), PALETTE)
    with pytest.raises(EdgesegError, match="cannot open a window"):
        open_sink("window", PALETTE)  # headless OpenCV, no display


def test_label_png_round_trip(tmp_path):
    labels = np.random.default_rng(0).integers(0, 2, (5, 7)).astype(np.uint8)
    labels[0, 0] = 255
    save_label_png(tmp_path / "l.png", labels, PALETTE)
    np.testing.assert_array_equal(load_label_png(tmp_path / "l.png"), labels)


class SlowOnBright:
    """Wraps a runner so bright frames take 30 ms longer: with several streams they finish out of order."""

    def __init__(self, runner):
        self.runner, self.name, self.last_stages_ms = runner, runner.name, {}

    def inputs(self):
        return self.runner.inputs()

    def infer(self, feed, check=True):
        if feed["image"].mean() > 127:
            time.sleep(0.03)
        return self.runner.infer(feed, check)


@pytest.mark.parametrize("streams", [1, 3])
def test_pipeline_keeps_every_frame_in_order(bundle, tmp_path, streams):
    video = make_video(tmp_path / "in.mp4", 24)
    written = []

    class Recording(FolderSink):
        def _write(self, frame, labels):
            written.append(frame.index)
            super()._write(frame, labels)

    with open_source(str(video)) as source, load_runner(bundle, threads=1) as runner, \
            Recording(tmp_path / "labels", PALETTE, "labels") as sink:
        summary = StreamPipeline(SlowOnBright(runner), source, sink, streams=streams).run()
    assert summary["frames_in"] == summary["frames_out"] == 24 and summary["dropped"] == 0
    assert written == list(range(24))  # written in source order, though bright frames finish late
    files = sorted((tmp_path / "labels").glob("*.png"))
    assert len(files) == 24
    for i, path in enumerate(files):
        labels = load_label_png(path)
        assert labels.shape == (H, W)
        assert (labels == (1 if is_bright(i) else 0)).all(), f"frame {i} out of order or wrong"
    assert set(summary["stages_ms"]) >= {"decode", "preprocess", "inference", "postprocess", "sink"}
    assert summary["glass_to_glass_ms"]["count"] == 24 and set(summary["queue_wait_ms"]) == {"to_batch", "to_sink"}


def test_pipeline_memory_is_flat_over_500_frames(bundle, tmp_path):
    video = make_video(tmp_path / "long.mp4", 500)
    samples = {}

    class Sampling(NullSink):
        def _write(self, frame, labels):
            if frame.index in (100, 499):
                samples[frame.index] = rss_mib()

    with open_source(str(video)) as source, load_runner(bundle, threads=1) as runner:
        summary = StreamPipeline(runner, source, Sampling("null", PALETTE), streams=2).run()
    assert summary["frames_out"] == 500
    assert samples[499] - samples[100] < 8, samples


def test_pipeline_stops_cleanly_on_ctrl_c(bundle, tmp_path):
    video = make_video(tmp_path / "in.mp4", 40)

    class Interrupting(FrameSink):
        def _write(self, frame, labels):
            if frame.index == 5:
                raise KeyboardInterrupt

    with open_source(str(video)) as source, load_runner(bundle, threads=1) as runner:
        sink = Interrupting("ctrl-c", PALETTE)
        summary = StreamPipeline(runner, source, sink, streams=2).run()
    assert summary["interrupted"] and summary["frames_out"] == 5


def test_pipeline_reports_a_source_failing_mid_stream(bundle):
    capture = FakeCapture([_frame(200), _frame(10), None])
    source = CaptureSource("camera 1", lambda: capture, live=True, max_reopen=1, sleep=lambda s: None)
    source.opener = lambda: FakeCapture.__new__(_Closed)
    with load_runner(bundle, threads=1) as runner, pytest.raises(EdgesegError, match="dropped out"):
        StreamPipeline(runner, source, NullSink("null", PALETTE)).run()


def test_run_cli_writes_every_frame_with_its_overlay(bundle, tmp_path, cli):
    video = make_video(tmp_path / "in.mp4", 12)
    r = cli("run", str(bundle), "--source", str(video), "--sink", str(tmp_path / "out.mp4"), "--backend",
            "onnxruntime", "--streams", "2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames_out"] == 12 and summary["backend"] == "onnxruntime"
    out = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    frames = []
    while True:
        ok, frame = out.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 12
    # a bright frame is labelled "bright" (yellow, 250,250,0), a dark one "dark" (20,20,20): blue channel low
    assert frames[0][..., 2].mean() > 200 and frames[0][..., 0].mean() < 130
    assert frames[1][..., 2].mean() < 40


@pytest.mark.parametrize("case", ["source", "sink", "bundle"])
def test_run_cli_bad_input_is_one_line(bundle, tmp_path, cli, case):
    video = make_video(tmp_path / "in.mp4", 2)
    args = {"source": [str(bundle), "--source", str(tmp_path / "nope.mp4")],
            "sink": [str(bundle), "--source", str(video), "--sink", str(tmp_path / "no" / "o.mp4")],
            "bundle": [str(tmp_path), "--source", str(video)]}[case]
    r = cli("run", *args)
    assert r.returncode == 1 and r.stderr.startswith("edgeseg: error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
