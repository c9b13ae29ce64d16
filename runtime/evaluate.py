"""Score any runner on a dataset split with the same metrics as a torch checkpoint (no torch here).

Frames are resized to the deploy size, run, and the predicted labels resized back (nearest) to the label
map's size, so scores are always computed at the dataset's own resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from edgeseg.data.base import SegmentationSource
from edgeseg.data.geometry import DEFAULT_RESIZE, labels_to_frame
from edgeseg.errors import EdgesegError
from edgeseg.metrics import BoundaryFScore, ConfusionMatrix
from edgeseg.progress import Progress, end_live_line
from edgeseg.runtime.feeds import image_geometry, make_feed, specs_take_depth
from edgeseg.runtime.runner import Runner

log = logging.getLogger(__name__)


def split_summary(source: SegmentationSource, count: int) -> str:
    """``100 images of synthetic/val (256x512 the first)``: what a validation scores, for its log line."""
    if count <= 0 or len(source) == 0:
        return f"0 images of {source.name}"
    h, w = source[0][1].shape[:2]
    return f"{count} image{'s' if count != 1 else ''} of {source.name} ({h}x{w} the first)"


def announce(what: str) -> None:
    """Log what a validation is about to score (after ending a live progress line)."""
    end_live_line()
    log.info("%s", what)


def evaluate_runner(runner: Runner, source: SegmentationSource, *, num_classes: int,
                    max_images: int | None = None, boundary: bool = False, progress: bool = False,
                    latencies: list[float] | None = None,
                    on_prediction: Callable[[int, np.ndarray], None] | None = None,
                    mode: str = DEFAULT_RESIZE, bgr: bool = False) -> ConfusionMatrix:
    """Run an active ``runner`` over the split; append per-batch latencies (ms) to ``latencies`` and call
    ``on_prediction(index, labels)`` with each predicted label map (at the label's size) when given. Images go
    in and labels come back through ``mode`` (the bundle's :attr:`~edgeseg.runtime.bundle.Bundle.host_resize`);
    ``bgr``: the graph takes BGR frames (``--frame-format bgr``), the dataset's RGB images are flipped for it."""
    specs = runner.inputs()
    static, size = image_geometry(runner.name, specs)
    batch = static or 1
    count = len(source) if max_images is None else min(max_images, len(source))
    if count < batch:
        raise EdgesegError(f"the model takes batches of {batch}; the split has only {count} images")
    rgbd = specs_take_depth(specs)
    cm = ConfusionMatrix(num_classes, source.ignore_index)
    bf = BoundaryFScore() if boundary else None
    scored = count // batch * batch
    if progress:
        announce(f"scoring {split_summary(source, scored)} with {runner.backend}: fitted to its {size[0]}x{size[1]} "
                 f"input ({mode}), labels mapped back to each image's size")
    bar = Progress(scored, f"validate {runner.backend}", enabled=progress)
    try:
        for start in range(0, count - batch + 1, batch):
            if rgbd:
                rgbd_samples = [source.rgbd(i) for i in range(start, start + batch)]
                samples = [(img, label) for img, label, _ in rgbd_samples]
                feed = make_feed(specs, [img for img, _ in samples], size, [s[2] for s in rgbd_samples], mode)
            else:
                samples = [source[i] for i in range(start, start + batch)]
                feed = make_feed(specs, [img[:, :, ::-1] if bgr else img for img, _ in samples], size, mode=mode)
            out = runner.infer(feed)
            if latencies is not None:
                latencies.append(runner.last_latency_ms)
            if "labels" not in out:
                raise EdgesegError(f"{runner.name} has no 'labels' output (outputs: {', '.join(out)})")
            for offset, (pred, (_, label)) in enumerate(zip(out["labels"], samples)):
                pred = labels_to_frame(np.asarray(pred, np.uint8), label.shape, mode, fill=source.ignore_index)
                cm.update(pred, label)
                if on_prediction is not None:
                    on_prediction(start + offset, pred)
                if bf is not None:
                    bf.update(pred, label)
            bar.update(batch)
    finally:
        bar.close()
    cm.boundary = bf.compute() if bf is not None else None
    return cm
