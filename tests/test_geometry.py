"""One frame → input geometry: calibration, eval, bench and run fit a frame of another aspect ratio identically,
as the bundle records (``input.resize``), and map labels back onto the frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_fixtures import H, W, make_threshold_bundle
from PIL import Image

from edgeseg.calibration.readers import load_calibration_set
from edgeseg.data.geometry import RESIZE_MODES, frame_to_input, labels_to_frame, map_to_input, placement
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import open_bundle
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.pipeline import StreamPipeline
from edgeseg.runtime.sinks import NullSink
from edgeseg.runtime.sources import FolderSource


def _frame(h: int = 72, w: int = 128) -> np.ndarray:
    """A 16:9 frame with a bright vertical stripe in the middle and distinct left and right halves."""
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2, 0] = 200
    frame[:, w // 2:, 2] = 200
    frame[:, w // 2 - 4: w // 2 + 4] = 255
    return frame


class Recording:
    """Wraps a runner and keeps every image batch it is fed."""

    def __init__(self, runner):
        self.runner, self.name, self.last_stages_ms, self.fed = runner, runner.name, {}, []

    def inputs(self):
        return self.runner.inputs()

    def infer(self, feed, check=True):
        self.fed.append(feed["image"].copy())
        return self.runner.infer(feed, check)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_calibration_and_run_feed_a_16_9_frame_identically(tmp_path, mode):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["resize"] = mode
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "frames").mkdir()
    Image.fromarray(_frame()).save(tmp_path / "frames" / "f0.png")

    size = open_bundle(bundle).input_size
    calibrated = load_calibration_set(str(tmp_path / "frames"), size, mode=open_bundle(bundle).resize_mode).images[0]
    with load_runner(bundle) as runner:
        recording = Recording(runner)
        StreamPipeline(recording, FolderSource(tmp_path / "frames"), NullSink("null", []),
                       mode=open_bundle(bundle).resize_mode).run()
    assert recording.fed[0].shape == (1, H, W, 3)
    np.testing.assert_array_equal(recording.fed[0][0], calibrated)
    np.testing.assert_array_equal(calibrated, frame_to_input(_frame(), (H, W), mode))


def test_the_modes_differ_where_they_should():
    frame = _frame()
    stretch, letterbox, crop = (frame_to_input(frame, (64, 64), m) for m in RESIZE_MODES)
    assert (letterbox[:8] == 0).all() and (letterbox[-8:] == 0).all()  # padded above and below, 16:9 into 1:1
    assert letterbox[32, 0, 0] == 200 and letterbox[32, -1, 2] == 200  # the whole width is kept
    assert crop[:, 0, 0].min() > 150 and crop[:, -1, 2].min() > 150  # cut at the sides, no padding
    assert (crop[:, 30:34] > 200).all()  # the centre stripe stays in the centre
    assert not np.array_equal(stretch, crop) and not np.array_equal(stretch, letterbox)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("frame", [(72, 128), (128, 72), (64, 64), (33, 100)])
def test_labels_map_back_onto_the_frame(mode, frame):
    size = (32, 48)
    where = placement(frame, size, mode)
    rows = np.repeat(np.arange(frame[0], dtype=np.float32)[:, None], frame[1], axis=1)
    mapped = map_to_input(rows, size, mode, fill=-1)
    labels = np.where(mapped >= 0, (mapped * 4 / frame[0]).astype(np.uint8), 255).astype(np.uint8)
    back = labels_to_frame(labels, frame, mode)
    assert back.shape == frame
    seen = back != 255
    if mode == "crop":  # what the input never saw is ignored: rows or columns at the edges, never the centre
        assert seen[frame[0] // 2, frame[1] // 2]
        if where.scaled[0] > size[0]:
            assert not seen[0].any() and not seen[-1].any()
        if where.scaled[1] > size[1]:
            assert not seen[:, 0].any() and not seen[:, -1].any()
    else:
        assert seen.all()
    expected = (np.arange(frame[0]) * 4 // frame[0])[:, None].repeat(frame[1], axis=1)
    assert np.mean(back[seen] == expected[seen]) > 0.9  # every pixel lands where it came from


def test_an_unknown_mode_is_refused():
    with pytest.raises(EdgesegError, match="letterbox"):
        frame_to_input(_frame(), (32, 32), "squash")


def test_a_manifest_with_an_unknown_mode_is_refused(tmp_path):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["resize"] = "squash"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgesegError, match="input.resize"):
        open_bundle(bundle)
