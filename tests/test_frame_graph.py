"""Pixel work inside the deploy graph: frames in at camera size, labels back at frame size,
overlay / color drawn by the graph, and the ArgMax at the logits' resolution. The graph's geometry is checked
against the host's (edgeseg.data.geometry), the overlay against a numpy reference of palette + blend, and an
exported bundle runs `edgeseg run` with no host resize or blend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeseg.data.geometry import RESIZE_MODES, frame_to_input, labels_to_frame, placement
from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.models import create
from edgeseg.models.deploy import DeployModel, native_logits
from edgeseg.models.frame_graph import FrameIn, LabelsOut, Painter
from edgeseg.models.importers.formats import FORMATS
from edgeseg.models.layers.ops import resize_to
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


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_argmax_at_logits_skips_the_final_upsample_of_every_import_format(fmt):
    """The model options ``edgeseg import`` sets (bisenetv1 coincheung, danet align_corners...) keep the final
    upsample in ``to_input_size``: under ``native_logits`` it is skipped, and upsampling the native logits as
    ``to_input_size`` would gives the full logits exactly."""
    torch.manual_seed(0)
    spec = FORMATS[fmt]
    model = create(spec.model, num_classes=5, **spec.kwargs).eval()
    x = torch.randn(1, model.in_channels, 64, 96)
    corners = []
    final = model.to_input_size
    model.to_input_size = lambda logits, inp, align_corners=False: (corners.append(align_corners),
                                                                     final(logits, inp, align_corners))[1]
    with torch.no_grad():
        full = model(x)
        with native_logits(model):
            native = model(x)
    assert len(corners) == 2 and corners[0] == corners[1]
    if spec.model != "acnet":  # acnet's final deconv already reaches the input size
        assert native.shape[-2] < x.shape[-2]
    assert torch.equal(resize_to(native, x.shape[-2:], align_corners=corners[0]), full)


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


@pytest.fixture(scope="module")
def frame_bundle(tmp_path_factory):
    """bisenetv2 taking 36x64 BGR frames (letterbox into 32x64), labels and overlay drawn by the graph."""
    root = tmp_path_factory.mktemp("frame") / "bundle"
    return export_bundle(root, model_name="bisenetv2", options=ExportOptions(
        input_size=DEPLOY, num_classes=3, frame_size=FRAME, frame_format="bgr", resize="letterbox",
        outputs=("labels", "overlay"), overlay_alpha=0.4))


def _video(path, frames: list[np.ndarray]) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (FRAME[1], FRAME[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_frame_bundle_records_the_frame_and_verifies_at_frame_size(frame_bundle):
    m = frame_bundle.manifest
    assert m.input.frame == FRAME and m.input.size == DEPLOY and m.input.frame_format == "bgr"
    assert m.inputs[0].shape == [1, *FRAME, 3] and m.inputs[0].color == "BGR"
    assert [(o.name, o.shape, o.alpha) for o in m.outputs] == [("labels", [1, *FRAME], None),
                                                               ("overlay", [1, *FRAME, 3], 0.4)]
    verification = json.loads((frame_bundle.root / "verify.json").read_text())
    assert verification["label_agreement"] >= 0.999 and verification["picture_agreement"] >= 0.999
    assert "legend.png" in m.files


def test_run_on_a_frame_size_video_does_no_host_resize_or_blend(frame_bundle, tmp_path, cli_here, monkeypatch):
    import cv2

    from edgeseg.runtime import feeds, pipeline, sinks

    def forbidden(*args, **kwargs):
        raise AssertionError("host pixel work in a frame-size bundle's loop")

    for module, name in ((feeds, "frames_to_batch"), (pipeline, "labels_to_frame"), (sinks, "blend")):
        monkeypatch.setattr(module, name, forbidden)
    rng = np.random.default_rng(5)
    _video(tmp_path / "in.avi", [rng.integers(0, 256, (*FRAME, 3), dtype=np.uint8) for _ in range(3)])
    result = cli_here("run", str(frame_bundle.root), "--source", str(tmp_path / "in.avi"),
                      "--sink", f"overlays:{tmp_path / 'out'}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames_out"] == 3
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 3
    # the graph's overlay is palette + blend over the BGR frame it was given
    from edgeseg.runtime.load import load_runner

    capture = cv2.VideoCapture(str(tmp_path / "in.avi"))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    with load_runner(frame_bundle.root, "onnxruntime") as runner:
        out = runner.infer({"image": bgr[None]})
    palette = [c[::-1] for c in frame_bundle.model.palette]
    want = reference_overlay(bgr, out["labels"][0], palette, 0.4)
    assert np.abs(out["overlay"][0].astype(int) - want.astype(int)).max() <= 1


def test_run_refuses_a_video_of_another_size(frame_bundle, tmp_path, cli_here):
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "big.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 48))
    writer.write(np.zeros((48, 80, 3), np.uint8))
    writer.release()
    result = cli_here("run", str(frame_bundle.root), "--source", str(tmp_path / "big.avi"))
    assert result.returncode == 1 and "--frame-size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_eval_scores_a_frame_bundle_at_its_frame_size(frame_bundle):
    from edgeseg.data import open_dataset
    from edgeseg.runtime.evaluate import evaluate_runner
    from edgeseg.runtime.load import load_runner

    source = open_dataset("synthetic:2", "val")
    seen = []
    with load_runner(frame_bundle.root, "onnxruntime") as runner:
        cm = evaluate_runner(runner, source, num_classes=3, max_images=2, mode=frame_bundle.host_resize,
                             bgr=frame_bundle.frame_bgr, on_prediction=lambda i, p: seen.append(p.shape))
    assert frame_bundle.host_resize == "stretch" and seen == [source[0][1].shape, source[1][1].shape]
    assert cm.matrix.sum() > 0


def test_argmax_at_logits_records_its_agreement_and_refuses_below_the_minimum(tmp_path, monkeypatch):
    bundle = export_bundle(tmp_path / "a", model_name="lednet", options=ExportOptions(
        input_size=DEPLOY, num_classes=3, frame_size=(48, 64), resize="crop", argmax_at="logits",
        min_argmax_agreement=0.5))
    verification = json.loads((bundle.root / "verify.json").read_text())
    assert verification["argmax_at"] == "logits" and 0.5 <= verification["argmax_agreement"] <= 1
    assert bundle.manifest.report("verification")["argmax_agreement"] == verification["argmax_agreement"]
    assert bundle.manifest.outputs[0].argmax_at == "logits"
    import edgeseg.export.pipeline as export_pipeline

    monkeypatch.setattr(export_pipeline, "argmax_agreement", lambda *a, **k: {
        "argmax_at": "logits", "argmax_agreement": 0.8, "argmax_agreement_on": "random"})
    with pytest.raises(EdgesegError, match="80.000%.*--min-argmax-agreement"):
        export_bundle(tmp_path / "b", model_name="lednet", options=ExportOptions(
            input_size=DEPLOY, num_classes=3, argmax_at="logits", min_argmax_agreement=0.9))
    assert not (tmp_path / "b").exists()
