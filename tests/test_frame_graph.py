"""Pixel work inside the deploy graph (issue 19 items 1-3): frames in at camera size, labels back at frame size,
overlay / color drawn by the graph, and the ArgMax at the logits' resolution. The graph's geometry is checked
against the host's (edgeseg.data.geometry), the overlay against a numpy reference of palette + blend, and an
exported bundle runs `edgeseg run` with no host resize or blend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeseg.data.geometry import RESIZE_MODES, frame_to_input, labels_to_frame, placement
from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import ExportOptions
from edgeseg.models import create
from edgeseg.models.deploy import DeployModel, native_logits
from edgeseg.models.frame_graph import FrameIn, LabelsOut, Painter
from edgeseg.runtime.feeds import make_feed
from edgeseg.runtime.runner import TensorSpec

PALETTE = [[200, 10, 10], [10, 200, 10], [10, 10, 200]]
FRAME, DEPLOY = (36, 64), (32, 64)


def reference_overlay(image: np.ndarray, labels: np.ndarray, palette, alpha: float) -> np.ndarray:
    """Palette + blend in plain numpy, written apart from the library: ignored pixels (255) keep the image."""
    lut = np.zeros((256, 3), np.float32)
    lut[: len(palette)] = palette
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * lut[labels]
    mixed[labels == 255] = image[labels == 255]
    return np.floor(mixed).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("frame, size", [((36, 64), (32, 64)), ((720, 1280), (64, 96)), ((20, 30), (48, 40))])
def test_graph_labels_land_where_the_host_puts_them(mode, frame, size):
    labels = np.random.default_rng(0).integers(0, 19, size).astype(np.uint8)
    graph = LabelsOut(placement(frame, size, mode), frame)(torch.from_numpy(labels).float()[None])[0]
    host = labels_to_frame(labels, frame, mode)
    assert graph.shape == frame
    assert np.array_equal(graph.numpy().astype(np.uint8), host)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_graph_frame_placement_matches_the_host(mode):
    frame = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    frame = np.asarray(torch.nn.functional.interpolate(  # smooth, so bilinear variants agree closely
        torch.from_numpy(frame).permute(2, 0, 1)[None].float(), size=(24, 40), mode="bilinear")[0]
        .permute(1, 2, 0).numpy(), np.uint8)
    where = placement((24, 40), (48, 64), mode)  # an upscale: PIL's bilinear is then not antialiased either
    graph, pixels = FrameIn(where, (24, 40))(torch.from_numpy(frame)[None], torch.float32)
    host = frame_to_input(frame, (48, 64), mode)
    assert torch.equal(pixels[0], torch.from_numpy(frame).float())
    diff = np.abs(graph[0].permute(1, 2, 0).numpy() - host.astype(np.float32))
    assert diff.mean() < 1.5 and graph.shape == (1, 3, 48, 64)


def test_bgr_frames_are_flipped_inside_the_graph():
    rgb = np.random.default_rng(2).integers(0, 256, (1, *FRAME, 3), dtype=np.uint8)
    where = placement(FRAME, DEPLOY, "letterbox")
    from_rgb, _ = FrameIn(where, FRAME)(torch.from_numpy(rgb), torch.float32)
    from_bgr, _ = FrameIn(where, FRAME, bgr=True)(torch.from_numpy(rgb[..., ::-1].copy()), torch.float32)
    assert torch.equal(from_rgb, from_bgr)


@pytest.mark.parametrize("bgr", [False, True])
def test_in_graph_overlay_matches_a_numpy_reference(bgr):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (2, *FRAME, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (2, *FRAME)).astype(np.uint8)  # 3 = a class without a colour (black)
    labels[:, :3] = 255  # ignored: the image alone
    painter = Painter(PALETTE, 0.4, bgr=bgr)
    index = torch.from_numpy(labels).long()
    got = painter.overlay(index, torch.from_numpy(image).float()).numpy()
    palette = [c[::-1] for c in PALETTE] if bgr else PALETTE
    want = reference_overlay(image, labels, palette, 0.4)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1 and np.mean(got == want) > 0.999
    colour = painter.color(index).numpy()
    assert (colour[labels == 0] == palette[0]).all() and (colour[labels == 255] == 0).all()


@pytest.mark.parametrize("name", ["bisenetv1", "bisenetv2", "dfanet_b", "lednet"])
def test_argmax_at_logits_takes_the_logits_before_the_final_upsample(name):
    torch.manual_seed(0)
    model = create(name, num_classes=3).eval()
    size = (64, 64)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        full = model(x)
        with native_logits(model):
            native = model(x)
        assert not model.native_logits  # restored
        assert full.shape[-2:] == size and native.shape[-2] < size[0]  # the final upsample was skipped
        exact = DeployModel(model, (0.5,) * 3, (0.25,) * 3, frame=FRAME, size=size, resize="crop")
        cheap = exact.like(argmax_at="logits")
        image = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (1, *FRAME, 3), dtype=np.uint8))
        a, b = exact(image), cheap(image)
    assert a.shape == b.shape == (1, *FRAME) and float((a == b).float().mean()) > 0.5


def test_a_frame_of_another_size_is_refused_in_one_line():
    specs = [TensorSpec("image", "uint8", (1, *FRAME, 3))]
    good = np.zeros((*FRAME, 3), np.uint8)
    feed = make_feed(specs, [good], FRAME, frame_in_graph=True)
    assert feed["image"].shape == (1, *FRAME, 3) and np.shares_memory(feed["image"], good)  # untouched: a view
    with pytest.raises(EdgesegError, match="36x64 frames") as err:
        make_feed(specs, [np.zeros((40, 64, 3), np.uint8)], FRAME, frame_in_graph=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("options, match", [
    (dict(frame_format="bgr"), "needs --frame-size"),
    (dict(argmax_at="logits", outputs=("labels", "logits")), "labels .and overlay, color. only"),
    (dict(frame_size=(36, 64), crf=object()), "do not combine"),
    (dict(overlay_alpha=1.5), "overlay_alpha"),
    (dict(frame_size=(4, 64)), "frame_size"),
])
def test_export_refuses_what_does_not_combine_before_any_work(options, match):
    with pytest.raises(EdgesegError, match=match):
        ExportOptions(**options)
