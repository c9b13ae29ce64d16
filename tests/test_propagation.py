"""Video propagation (Zhu et al., CVPR 2019): synthetic sequences with exact motion, warping, the forward-backward
check, joint vs label-only propagation, ``edgeseg propagate``, the ``frames:`` sink, and label relaxation's
official options. Tiny sizes: every test runs in a second or two."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edgeseg.data import open_dataset
from edgeseg.data.synthetic import CLASSES, PALETTE
from edgeseg.errors import EdgesegError
from edgeseg.runtime.sinks import open_sink
from edgeseg.runtime.sources import Frame
from edgeseg.train.config import TrainConfig, apply_overrides
from edgeseg.train.losses import LabelRelaxation, criterion_for
from edgeseg.video.clips import Clip
from edgeseg.video.flow import ConsistencyCheck, DISFlow, ExactFlow, MotionEstimator, warp_bilinear, warp_nearest
from edgeseg.video.frames import neighbour_stem
from edgeseg.video.propagate import propagate_clip
from edgeseg.video.sequences import render_sequence

SIZE = (32, 64)


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pixel accuracy over pixels both label, and the share of the truth's pixels the prediction labels."""
    both = (pred != 255) & (truth != 255)
    return float((pred[both] == truth[both]).mean()), float(both.sum() / (truth != 255).sum())


# -- synthetic sequences -------------------------------------------------------------------------------------------
def test_pan_exact_flow_reproduces_the_next_frame():
    seq = render_sequence(3, SIZE, 5, "pan", sensor_noise=False)
    flow = seq.exact_flow(1, 0)  # frame +1 -> frame 0: where frame +1's pixels were
    assert np.abs(flow).max() >= 1  # the camera moves
    warped, inside = warp_bilinear(seq.frame(0), flow)
    assert inside.mean() > 0.8
    assert np.array_equal(warped[inside], seq.frame(1)[inside].astype(np.float32))
    assert np.array_equal(warp_nearest(seq.true_label(0), flow)[inside], seq.true_label(1)[inside])
    noisy = render_sequence(3, SIZE, 5, "pan")  # each frame its own sensor noise: close, not equal
    warped, inside = warp_bilinear(noisy.frame(0), noisy.exact_flow(1, 0))
    diff = np.abs(warped[inside] - noisy.frame(1)[inside])
    assert 0 < diff.mean() < 8


def test_sequences_are_deterministic_per_seed_and_share_frames_across_lengths():
    for motion in ("pan", "dolly"):
        a, b = render_sequence(5, SIZE, 5, motion), render_sequence(5, SIZE, 5, motion)
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.exact_flow(2, 0), b.exact_flow(2, 0), equal_nan=True)
        short = render_sequence(5, SIZE, 3, motion)
        assert np.array_equal(short.frames, a.frames[1:4]) and np.array_equal(short.labels, a.labels[1:4])
        assert not np.array_equal(render_sequence(6, SIZE, 5, motion).frames, a.frames)


def test_dolly_moves_the_scene_and_leaves_its_uncovered_pixels_unknown():
    seq = render_sequence(2, (64, 128), 7, "dolly")
    assert (seq.true_label(0) != 255).all()  # the centre frame is the rendered scene itself
    assert (seq.true_label(3) == 255).any()  # what nearer objects uncover is unknown
    flow = seq.exact_flow(3, 2)
    assert np.nanmax(np.abs(flow)) > 1 and np.isnan(flow).any()
    pairs, _ = propagate_clip(seq, seq.true_label(0), 1, ExactFlow(), check=None)
    for pair in pairs:
        accuracy, coverage = _accuracy(pair.label, seq.true_label(pair.offset))
        assert accuracy >= 0.97 and coverage >= 0.85, (pair.offset, accuracy, coverage)


def test_dolly_splat_keeps_the_nearest_surface():
    from edgeseg.video.sequences import _splat

    depth = np.full((40, 40), 10.0, np.float32)
    depth[16:24, 16:24] = 4.0  # a near square in front of a far wall
    label = (depth < 5).astype(np.uint8)
    image = np.stack([label * 200] * 3, -1).astype(np.uint8)
    _, ahead, ahead_depth = _splat(image, label, depth, (20.0, 20.0), 1.5, (0, 0), (40, 40))
    assert (ahead == 1).sum() >= 2.4 * (label == 1).sum()  # 1.6 times the size (4 m -> 2.5 m away): 2.56 the area
    grown = np.zeros((40, 40), bool)
    grown[14:26, 14:26] = True
    assert (ahead[grown] == 1).all() and (ahead_depth[grown] == 4.0).all()  # the wall never shows through


@pytest.mark.parametrize(("args", "message"), [((1, SIZE, 4, "pan"), "odd number"), ((1, SIZE, 13, "pan"), "up to 11"),
                                               ((1, SIZE, 3, "zoom"), "unknown motion")])
def test_bad_sequence_requests_are_refused(args, message):
    with pytest.raises(EdgesegError, match=message):
        render_sequence(*args)


# -- warping and propagation ----------------------------------------------------------------------------------------
def test_warps_sample_bilinearly_for_images_and_nearest_for_labels():
    ramp = np.tile(np.arange(8, dtype=np.float32) * 10, (4, 1))
    flow = np.zeros((4, 8, 2), np.float32)
    flow[..., 0] = 0.25
    warped, inside = warp_bilinear(ramp, flow)
    assert np.allclose(warped[:, :7], ramp[:, :7] + 2.5) and inside[:, :7].all() and not inside[:, 7].any()
    labels = np.tile(np.arange(8, dtype=np.uint8), (4, 1))
    flow[..., 0] = 0.75
    nearest = warp_nearest(labels, flow)
    assert np.array_equal(nearest[:, :7], labels[:, 1:]) and (nearest[:, 7] == 255).all()


def test_exact_flow_propagates_pan_labels_exactly_and_marks_the_outside_255():
    seq = render_sequence(4, SIZE, 5, "pan")
    pairs, missing = propagate_clip(seq, seq.true_label(0), 2, ExactFlow(), check=None)
    assert missing == 0 and [p.offset for p in pairs] == [1, 2, -1, -2]
    for pair in pairs:
        accuracy, coverage = _accuracy(pair.label, seq.true_label(pair.offset))
        assert accuracy >= 0.99 and coverage > 0.8
        dx, dy = seq.exact_flow(pair.offset, 0)[0, 0]  # where these pixels are in the labelled frame
        h, w = SIZE
        yy, xx = np.mgrid[0:h, 0:w]
        outside = (xx + dx < 0) | (xx + dx > w - 1) | (yy + dy < 0) | (yy + dy > h - 1)
        assert outside.any() and np.array_equal(pair.label == 255, outside)


def test_dis_flow_propagates_pan_labels_well_and_deterministically():
    seq = render_sequence(4, (64, 128), 3, "pan")
    first, _ = propagate_clip(seq, seq.true_label(0), 1, DISFlow())
    again, _ = propagate_clip(seq, seq.true_label(0), 1, DISFlow())
    for a, b in zip(first, again):
        assert np.array_equal(a.label, b.label) and np.array_equal(a.image, b.image)
        accuracy, coverage = _accuracy(a.label, seq.true_label(a.offset))
        assert accuracy >= 0.95 and coverage >= 0.8, (accuracy, coverage)


class _Shifted(MotionEstimator):
    """The exact flow plus a constant error (a flow estimator that is off by ``dx`` pixels)."""

    name = "shifted"

    def __init__(self, dx: int) -> None:
        self.dx = dx

    def flow(self, clip, source, target):
        flow = ExactFlow().flow(clip, source, target)
        flow[..., 0] += self.dx if target == 0 or abs(target) < abs(source) else -self.dx
        return flow


def test_sparse_labels_stay_sparse_with_no_new_classes():
    seq = render_sequence(4, SIZE, 5, "pan")
    sparse = np.full(SIZE, 255, np.uint8)
    sparse[::5, ::7] = seq.true_label(0)[::5, ::7]  # scribble-like: a few labelled pixels
    pairs, _ = propagate_clip(seq, sparse, 2, ExactFlow(), check=None)
    for pair in pairs:
        assert set(np.unique(pair.label)) <= set(np.unique(sparse))
        assert (pair.label != 255).sum() <= (sparse != 255).sum()


def test_joint_pairs_stay_aligned_under_a_wrong_flow_and_label_only_pairs_do_not():
    seq = render_sequence(1, (48, 96), 3, "pan", sensor_noise=False)
    joint, _ = propagate_clip(seq, seq.true_label(0), 1, _Shifted(3), mode="joint", check=None, directions=(1,))
    label, _ = propagate_clip(seq, seq.true_label(0), 1, _Shifted(3), mode="label", check=None, directions=(1,))
    jp, lp = joint[0], label[0]
    assert np.array_equal(jp.label, lp.label)  # the same label either way
    assert np.array_equal(lp.image, seq.frame(1))  # label-only: the real frame
    dx, dy = (int(v) for v in seq.exact_flow(1, 0)[0, 0] + np.array([3, 0]))
    h, w = jp.label.shape
    inside = jp.label != 255
    ys, xs = np.nonzero(inside)
    # joint: image and label both sample the labelled frame at the same (wrong) place, so they agree
    assert np.array_equal(jp.image[ys, xs], seq.frame(0)[ys + dy, xs + dx])
    assert np.array_equal(jp.label[ys, xs], seq.true_label(0)[ys + dy, xs + dx])
    assert not np.array_equal(jp.image, lp.image)
    assert np.array_equal(jp.image[~jp.inside], seq.frame(1)[~jp.inside])  # outside the warp: the real frame
    # label-only: the real frame's true label disagrees with the shifted one along every boundary
    accuracy, _ = _accuracy(lp.label, seq.true_label(1))
    assert accuracy < 0.97


class _TwoFrames(Clip):
    """A static textured background and a square that moves ``step`` pixels right, with exact flows."""

    name = "square"

    def __init__(self, step: int = 4) -> None:
        rng = np.random.default_rng(0)
        self.background = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
        self.step = step
        self.frames = {0: self._draw(8), 1: self._draw(8 + step)}

    def _draw(self, x0: int) -> np.ndarray:
        image = self.background.copy()
        image[8:16, x0:x0 + 8] = 255
        return image

    def square(self, offset: int) -> np.ndarray:
        mask = np.zeros((24, 40), bool)
        mask[8:16, 8 + self.step * offset:16 + self.step * offset] = True
        return mask

    def has(self, offset):
        return offset in self.frames

    def frame(self, offset):
        return self.frames[offset]

    def exact_flow(self, source, target):
        flow = np.zeros((24, 40, 2), np.float32)
        flow[self.square(source), 0] = self.step * (target - source)
        return flow


def test_forward_backward_check_marks_what_the_moving_square_uncovered():
    clip = _TwoFrames(4)
    bad = ConsistencyCheck().inconsistent(clip.exact_flow(1, 0), clip.exact_flow(0, 1))
    uncovered = clip.square(0) & ~clip.square(1)  # background in frame 1, the square in frame 0
    assert np.array_equal(bad, uncovered)
    label = np.where(clip.square(0), 1, 0).astype(np.uint8)
    checked, _ = propagate_clip(clip, label, 1, ExactFlow(), directions=(1,))
    unchecked, _ = propagate_clip(clip, label, 1, ExactFlow(), check=None, directions=(1,))
    assert np.array_equal(checked[0].label == 255, uncovered) and np.array_equal(checked[0].masked, uncovered)
    assert not (unchecked[0].label == 255).any()
    assert np.array_equal(checked[0].label[~uncovered], np.where(clip.square(1), 1, 0)[~uncovered])


def test_a_missing_frame_ends_that_direction_and_is_counted():
    clip = _TwoFrames(2)
    pairs, missing = propagate_clip(clip, np.zeros((24, 40), np.uint8), 3, ExactFlow(), check=None)
    assert [p.offset for p in pairs] == [1] and missing == 2 + 3


def test_frame_names_pair_by_their_last_stand_alone_number():
    assert neighbour_stem("frame_000120", -3) == "frame_000117"
    assert neighbour_stem("aachen_000000_000019_leftImg8bit", 1) == "aachen_000000_000020_leftImg8bit"
    assert neighbour_stem("clip02_000009", 1) == "clip02_000010"
    assert neighbour_stem("leftImg8bit", 1) is None and neighbour_stem("f_0001", -2) is None


# -- edgeseg propagate ---------------------------------------------------------------------------------------------
def test_propagate_synthetic_end_to_end(cli_here, tmp_path):
    out = tmp_path / "prop"
    args = ("propagate", "--data", "synthetic:2", "--frames", "synthetic:pan", "--steps", "2", "--size", "32x64",
            "--out", str(out))
    r = cli_here(*args, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [row["offset"] for row in report["steps"]] == [-2, -1, 1, 2] and report["pairs"] == 8
    assert all(row["pixel_acc"] >= 0.95 and row["pairs"] == 2 for row in report["steps"])
    assert all(0.8 < row["coverage"] < 1 for row in report["steps"])  # the strip the pan brings in is unknown
    assert any(row["dropped_by_check"] > 0 for row in report["steps"])  # the consistency check is on by default
    data = open_dataset(f"folder:{out}/images,{out}/labels")
    assert len(data) == 8 and data.classes == list(CLASSES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"]["mode"] == "joint" and manifest["method"]["flow"]["name"] == "dis"
    assert manifest["method"]["consistency_check"] == {"alpha": 0.01, "beta": 0.5}
    assert sorted((p["sample"], p["offset"]) for p in manifest["pairs"]) == sorted(
        (f"pan_{s}", k) for s in (0, 1) for k in (-2, -1, 1, 2))
    again = cli_here(*args, "--mode", "label", "--with-centre")  # its own folder: replaced
    assert again.returncode == 0, again.stderr
    assert "pixel acc" in again.stdout and len(open_dataset(f"folder:{out}/images,{out}/labels")) == 10


def test_propagate_reads_recorded_frames_by_name(cli_here, tmp_path):
    seq = render_sequence(4, SIZE, 5, "pan")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "frames" / "clip").mkdir(parents=True)
    for i in (-2, -1, 1):  # +2 was not recorded
        Image.fromarray(seq.frame(i)).save(tmp_path / "frames" / "clip" / f"cam_{10 + i:06d}.png")
    for stem in ("cam_000010", "notes"):
        Image.fromarray(seq.frame(0)).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(seq.true_label(0)).save(tmp_path / "labels" / f"{stem}.png")
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "out"
    data = f"folder:{tmp_path / 'images'},{tmp_path / 'labels'}"
    r = cli_here("propagate", "--data", data, "--frames", str(tmp_path / "frames"), "--steps", "2", "--out", str(out),
                 "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [row["offset"] for row in report["steps"]] == [-2, -1, 1]
    assert report["skipped"] == {"no frame number": 1, "steps without a frame": 1}
    manifest = json.loads((out / "manifest.json").read_text())
    assert {p["frame"] for p in manifest["pairs"]} == {"clip/cam_000008.png", "clip/cam_000009.png",
                                                       "clip/cam_000011.png"}
    label = np.asarray(Image.open(out / "labels" / "cam_000010_+01.png"))
    accuracy, _ = _accuracy(label, seq.true_label(1))
    assert accuracy >= 0.95


REFUSALS = {"foreign": "not an edgeseg propagated dataset", "inside-frames": "write over the input",
            "exact-on-recorded": "needs synthetic frames", "synthetic-mismatch": "give both or neither",
            "steps": "too many", "ambiguous": "two frames named a_000002", "no-neighbours": "nothing to propagate"}


@pytest.mark.parametrize("case", REFUSALS)
def test_propagate_refusals_are_one_line_and_write_nothing(cli_here, tmp_path, case):
    frames = tmp_path / "frames"
    for folder in (frames / "b", tmp_path / "images", tmp_path / "labels"):
        folder.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for path in (frames / "a_000002.png", frames / "b" / "a_000002.jpg", tmp_path / "images" / "a_000001.png",
                 tmp_path / "elsewhere" / "z_000009.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)  # a_000002 twice: ambiguous
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "labels" / "a_000001.png")
    (tmp_path / "labels" / "classes.txt").write_text("a\nb\n")
    out = tmp_path / "out"
    synthetic = ("--data", "synthetic:1", "--frames", "synthetic:pan", "--size", "32x64")
    argv = {"foreign": (*synthetic, "--out", str(out)),
            "inside-frames": ("--data", "folder:x,y", "--frames", str(frames), "--out", str(frames / "out")),
            "exact-on-recorded": ("--data", "folder:x,y", "--frames", str(frames), "--flow", "exact",
                                  "--out", str(out)),
            "synthetic-mismatch": ("--data", "synthetic:1", "--frames", str(frames), "--out", str(out)),
            "steps": (*synthetic, "--steps", "6", "--out", str(out)),
            "ambiguous": ("--data", f"folder:{tmp_path / 'images'},{tmp_path / 'labels'}", "--frames", str(frames),
                          "--out", str(out)),
            "no-neighbours": ("--data", f"folder:{tmp_path / 'images'},{tmp_path / 'labels'}", "--frames",
                              str(tmp_path / "elsewhere"), "--out", str(out))}[case]
    if case == "foreign":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    r = cli_here("propagate", *argv)
    assert r.returncode == 1 and r.stderr.startswith("edgeseg: error:") and len(r.stderr.strip().splitlines()) == 1
    assert REFUSALS[case] in r.stderr
    assert (out / "mine.txt").read_text() == "keep" if case == "foreign" else not out.exists()
    assert not (frames / "out").exists()


# -- the frames: sink ----------------------------------------------------------------------------------------------
def _frames(n: int, bgr: bool = False) -> list[Frame]:
    rng = np.random.default_rng(n)
    return [Frame(i, rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), str(i), bgr=bgr) for i in range(n)]


def test_frames_sink_writes_every_frame_numbered_per_clip(tmp_path):
    folder = tmp_path / "rec"
    frames = _frames(3)
    with open_sink(f"frames:{folder}", PALETTE) as sink:
        for f in frames:
            sink.write(f, np.zeros((12, 16), np.uint8))
    for f in frames:
        assert np.array_equal(np.asarray(Image.open(folder / f"clip01_{f.index:06d}.png")), f.image)
    bgr = _frames(2, bgr=True)
    with open_sink(f"frames:{folder},jpg", PALETTE) as sink:  # a second recording: a new clip, never over the first
        for f in bgr:
            sink.write(f, np.zeros((12, 16), np.uint8))
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names == ["clip01_000000.png", "clip01_000001.png", "clip01_000002.png", "clip02_000000.jpg",
                     "clip02_000001.jpg"]
    written = np.asarray(Image.open(folder / "clip02_000001.jpg")).astype(int)
    assert np.abs(written - bgr[1].image[:, :, ::-1]).mean() < np.abs(written - bgr[1].image).mean()


def test_frames_sink_refuses_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(EdgesegError, match="did not write"):
        open_sink(f"frames:{foreign}", PALETTE)
    labels = tmp_path / "labels"
    with open_sink(f"labels:{labels}", PALETTE) as sink:
        sink.write(_frames(1)[0], np.zeros((12, 16), np.uint8))
    with pytest.raises(EdgesegError, match="another sink"):
        open_sink(f"frames:{labels}", PALETTE)
    with pytest.raises(EdgesegError, match="over the input"):
        open_sink(f"frames:{tmp_path / 'src' / 'rec'}", PALETTE, inputs=[tmp_path / "src"])
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


def test_frames_sink_and_propagation_import_without_torch():
    code = ("import sys, edgeseg.runtime.frames_sink, edgeseg.cli.propagate_cmd, edgeseg.video.propagate, "
            "edgeseg.video.output, edgeseg.video.frames, edgeseg.video.sequences; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- label relaxation's options -------------------------------------------------------------------------------------
def _two_pixels():
    """A 1×2 image with classes 0 | 1: both pixels see both classes in their 3×3 window."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, 1, 2, generator=g), torch.tensor([[[0, 1]]])


def test_relaxation_weights_each_pixel_by_its_neighbourhoods_mean_class_weight():
    logits, labels = _two_pixels()
    p = F.softmax(logits, 1)
    plain = -torch.log(p[0, 0] + p[0, 1]).mean()
    assert LabelRelaxation(3)(logits, labels).item() == pytest.approx(plain.item(), rel=1e-6)
    weighted = LabelRelaxation(3, class_weights=torch.tensor([1.0, 3.0, 1.0]))(logits, labels)
    assert weighted.item() == pytest.approx(2.0 * plain.item(), rel=1e-6)  # (1 + 3) / |N| = 2, not 1 + 3
    # per-image weights 1 + b (1 - share): each class holds 2 of the 6 neighbourhood entries (border = ignore)
    image = LabelRelaxation(3, image_weight_bound=1.0)(logits, labels)
    assert image.item() == pytest.approx(plain.item() * (1 + (1 - 2 / 6)), rel=1e-6)


def test_strict_classes_keep_their_hard_target():
    logits, labels = _two_pixels()
    p = F.softmax(logits, 1)[0, :, 0]
    strict = LabelRelaxation(3, strict_classes=(1,))(logits, labels)
    expected = (-torch.log(p[0, 0] + p[1, 0]) - torch.log(p[1, 1])) / 2  # class 1's pixel: no union
    assert strict.item() == pytest.approx(expected.item(), rel=1e-6)


def test_relaxation_switches_off_at_its_fraction_of_training():
    g = torch.Generator().manual_seed(2)
    logits, labels = torch.randn(1, 2, 1, 4, generator=g), torch.tensor([[[0, 0, 1, 1]]])
    loss = LabelRelaxation(2, off_after=0.5)
    loss.set_progress(4, 10)
    assert loss.relaxed and loss(logits, labels) < F.cross_entropy(logits, labels)
    loss.set_progress(5, 10)
    ce = F.cross_entropy(logits, labels, reduction="none")[0, 0]
    assert not loss.relaxed  # plain cross-entropy, the two boundary pixels weighing 2
    assert loss(logits, labels).item() == pytest.approx(((ce * torch.tensor([1, 2, 2, 1])).sum() / 4).item(), rel=1e-6)


def test_relaxation_keys_in_the_training_config(tmp_path):
    config = apply_overrides(TrainConfig(loss="relax"), {"relax_strict_classes": "pole,6", "relax_off": "0.6",
                                                         "relax_wt_bound": "1"}).validate()
    criterion = criterion_for(config, list(CLASSES))
    assert criterion.strict.nonzero().flatten().tolist() == [6, 7] and criterion.off_after == 0.6
    assert criterion.image_weight_bound == 1.0
    weighted = criterion_for(TrainConfig(loss="relax", class_weights=[1.0] * 7 + [2.0]), list(CLASSES))
    assert weighted.class_weights.tolist() == [1.0] * 7 + [2.0]  # used by relax too, no longer dropped
    with pytest.raises(EdgesegError, match="no class 'lamp'"):
        criterion_for(apply_overrides(TrainConfig(loss="relax"), {"relax_strict_classes": ["lamp"]}), list(CLASSES))
    with pytest.raises(EdgesegError, match="apply to loss=relax"):
        TrainConfig(loss="ohem", relax_off=0.5).validate()
    with pytest.raises(EdgesegError, match="relax_off"):
        TrainConfig(loss="relax", relax_off=1.5).validate()


def test_the_trainer_tells_the_loss_where_training_is(tmp_path):
    from edgeseg.train.trainer import Trainer

    trainer = Trainer(TrainConfig(model="lednet", data="synthetic:4", out=str(tmp_path), iters=4, batch_size=2,
                                  crop=(32, 64), workers=0, warmup=0, loss="relax", relax_off=0.5, val_every=100,
                                  checkpoint_every=100))
    batch = next(iter(trainer._loader()))
    seen = []
    for iteration in (1, 2):
        trainer.iteration = iteration
        trainer._step([batch])
        seen.append(trainer.loss.criterion.relaxed)
    assert seen == [True, False]
