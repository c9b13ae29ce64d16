"""Simulated weak labels: modes, determinism, where clicks and strokes go, boxes and tags as allowed-class sets,
drawing after the geometry, the dataset view and ``edgeseg weak-labels``."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from edgeseg.data import open_dataset
from edgeseg.data.geometry import resize_labels
from edgeseg.data.synthetic_source import SyntheticSource
from edgeseg.data.torch_dataset import TorchSegmentationDataset
from edgeseg.data.transforms import Compose, RandomCrop, RandomScale
from edgeseg.data.weak import SOURCE_PIXEL, WeakLabels, parse_mode
from edgeseg.errors import EdgesegError
from edgeseg.train.extras import AllowedSetLoss, Partial
from edgeseg.train.losses import CrossEntropy

CLASSES = ["road", "sky", "car", "person"]
EIGHT = np.ones((3, 3), bool)


def blocks() -> np.ndarray:
    """A 40×60 label: sky over road, two cars, one person, a 3-pixel speck of road in the sky (under the
    minimum area) and a void strip."""
    label = np.zeros((40, 60), np.uint8)
    label[:15] = 1
    label[20:30, 5:20] = 2
    label[22:34, 30:50] = 2
    label[18:36, 52:57] = 3
    label[5, 10:13] = 0
    label[:, 58:] = 255
    return label


@pytest.fixture(scope="module")
def scenes():
    source = SyntheticSource("train", 3)
    return source, [source[i][1] for i in range(3)]


def test_modes_parse_and_bad_ones_are_refused():
    assert parse_mode("crop:64x128").crop == (64, 128)
    assert parse_mode("boxes:car,person").things == ("car", "person")
    assert parse_mode("Points").kind == "points" and parse_mode("image").sets
    for bad in ("clicks", "crop", "crop:0x4", "points:3", "boxes:"):
        with pytest.raises(EdgesegError):
            parse_mode(bad)
    with pytest.raises(EdgesegError, match="not a class"):
        WeakLabels("boxes:bus", CLASSES)
    with pytest.raises(EdgesegError, match="thing class"):
        WeakLabels("boxes", ["road", "sky"])


@pytest.mark.parametrize("mode", ["points", "scribbles", "crop:16x32"])
def test_annotations_are_a_function_of_seed_and_index(scenes, mode):
    source, labels = scenes
    a, b = WeakLabels(mode, source.classes, seed=4), WeakLabels(mode, source.classes, seed=4)
    assert all(np.array_equal(a.label(i, lab), b.label(i, lab)) for i, lab in enumerate(labels))
    if mode != "points":  # clicks have no randomness; strokes and tiles differ with the seed or the index
        other = WeakLabels(mode, source.classes, seed=5)
        assert not np.array_equal(a.label(0, labels[0]), other.label(0, labels[0]))
        assert not np.array_equal(a.label(0, labels[0]), a.label(1, labels[0]))


def test_annotations_do_not_change_with_the_epoch(scenes):
    source, _ = scenes
    full = Compose([RandomCrop((256, 512))])  # no geometry change: only the epoch differs
    ds = TorchSegmentationDataset(source, full, weak=WeakLabels("scribbles", source.classes))
    assert torch.equal(ds[(1, 0)][1], ds[(1, 7)][1])


def test_one_click_per_region_at_its_deepest_point():
    label = blocks()
    weak = WeakLabels("points", CLASSES, min_area=4)
    ann = weak.annotate(0, label)
    expected = []
    for c in range(len(CLASSES)):
        comp, n = ndimage.label(label == c, structure=EIGHT)
        for k in range(1, n + 1):
            region = comp == k
            if region.sum() >= 4:
                dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
                expected.append((c, k, dist.max(), comp, dist))
    assert ann.count == len(ann.ys) == len(expected) == 5  # the speck of road is under the minimum area
    for c, k, deepest, comp, dist in expected:
        hits = [(y, x) for y, x, cls in zip(ann.ys, ann.xs, ann.classes) if cls == c and comp[y, x] == k]
        assert len(hits) == 1
        assert dist[hits[0]] == deepest


@pytest.mark.parametrize("mode", ["points", "scribbles"])
def test_every_annotated_pixel_has_its_true_class(scenes, mode):
    source, labels = scenes
    weak = WeakLabels(mode, source.classes)
    for i, label in enumerate(labels):
        sparse = weak.label(i, label)
        marked = sparse != 255
        assert marked.any() and np.array_equal(sparse[marked], label[marked])
        fraction = marked.mean()
        assert (0 < fraction < 0.001) if mode == "points" else (0.005 < fraction < 0.1), fraction


def test_scribbles_are_strokes_inside_their_regions(scenes):
    source, labels = scenes
    weak = WeakLabels("scribbles", source.classes)
    ann = weak.annotate(0, labels[0])
    points = WeakLabels("points", source.classes).annotate(0, labels[0])
    assert ann.count == points.count  # one stroke (or, for a region too thin, its click) per region
    assert ann.ys.size > 20 * ann.count  # strokes, not dots


def _covered(side, width):
    """Per output row its source row, per output column its source column (-1: padding)."""
    index = side[SOURCE_PIXEL].astype(np.int64) - 1
    inside = side[SOURCE_PIXEL] > 0
    return np.where(inside, index // width, -1).max(1), np.where(inside, index % width, -1).max(0)


@pytest.mark.parametrize("scale", [0.5, 0.75])
def test_clicks_survive_a_downscale_because_they_are_drawn_after_it(scale):
    """Every click inside the crop keeps a pixel of its class at the output pixel nearest to it, where a label
    drawn first and then resized by nearest neighbour loses clicks."""
    label = np.repeat(np.repeat(blocks()[:, :58], 4, 0), 4, 1)  # 160×232, every region wide
    weak = WeakLabels("points", CLASSES)
    ann = weak.annotate(0, label)
    transform = Compose([RandomScale((scale, scale)), RandomCrop((64, 96))])
    lost_by_resizing = 0
    for seed in range(4):
        _, out_label, side = transform(np.zeros((*label.shape, 3), np.uint8), label, np.random.default_rng(seed),
                                       side=weak.coordinates(label.shape))
        out = weak.target(ann, out_label, side)
        rows, cols = _covered(side, label.shape[1])
        for y, x, c in zip(ann.ys, ann.xs, ann.classes):
            if not (rows[rows >= 0].min() <= y <= rows.max() and cols[cols >= 0].min() <= x <= cols.max()):
                continue  # outside the crop
            distance = np.abs(rows - y)[:, None] + np.abs(cols - x)[None, :]
            distance[(rows < 0)[:, None] | (cols < 0)[None, :]] = 10**9
            near = distance == distance.min()
            assert (out[near] == c).any(), (seed, y, x)
        drawn_first = weak.label(0, label)
        resized = resize_labels(drawn_first, (round(label.shape[0] * scale), round(label.shape[1] * scale)))
        lost_by_resizing += ann.count - int((resized != 255).sum())
    assert lost_by_resizing > 0  # what drawing after the geometry avoids


def test_clicks_stay_correct_after_a_strong_downscale(scenes):
    """A click on a 2-pixel pole can land on another class once the image is shrunk to a third; such a click is
    dropped, never drawn on the wrong class."""
    source, labels = scenes
    weak = WeakLabels("points", source.classes)
    transform = Compose([RandomScale((0.3, 0.3)), RandomCrop((64, 128))])
    for i, label in enumerate(labels):
        ann = weak.annotate(i, label)
        for seed in range(3):
            _, out_label, side = transform(np.zeros((*label.shape, 3), np.uint8), label,
                                           np.random.default_rng(seed), side=weak.coordinates(label.shape))
            out = weak.target(ann, out_label, side)
            marked = out != 255
            assert np.array_equal(out[marked], out_label[marked])


def test_given_labels_keep_every_labelled_pixel_through_a_downscale():
    label = np.full((40, 60), 255, np.uint8)
    label[10, 5:50] = 2  # a one-pixel line
    weak = WeakLabels("given", CLASSES)
    assert np.array_equal(weak.label(0, label), label)
    _, out_label, side = Compose([RandomScale((0.5, 0.5))])(np.zeros((40, 60, 3), np.uint8), label,
                                                            np.random.default_rng(0), side=weak.coordinates((40, 60)))
    out = weak.target(weak.annotate(0, label), out_label, side)
    assert (out_label != 255).sum() == 0  # nearest neighbour drops the odd row the line is on
    assert ((out == 2).sum(axis=0) > 0).sum() >= 22 and set(np.unique(out)) == {2, 255}


def test_boxes_allow_each_thing_only_inside_its_boxes():
    label = blocks()
    allowed = WeakLabels("boxes", CLASSES).label(0, label)
    ys, xs = np.nonzero(label != 255)
    assert allowed[label[ys, xs], ys, xs].all()  # the true class is always allowed
    assert not allowed[:, label == 255].any()  # ignored pixels stay ignored
    assert allowed[0].sum() == allowed[1].sum() == (label != 255).sum()  # stuff: everywhere
    car_boxes = np.zeros_like(label, bool)
    car_boxes[20:30, 5:20] = car_boxes[22:34, 30:50] = True
    assert np.array_equal(allowed[2], car_boxes)
    assert allowed[3].sum() == 18 * 5


def test_a_box_thinner_than_the_sampling_is_not_erased():
    label = np.zeros((40, 60), np.uint8)
    label[10, 10:40] = 2  # a one-row car on an even row, which a 0.5 downscale does not sample
    weak = WeakLabels("boxes", CLASSES)
    _, out_label, side = Compose([RandomScale((0.5, 0.5))])(np.zeros((40, 60, 3), np.uint8), label,
                                                            np.random.default_rng(0), side=weak.coordinates((40, 60)))
    allowed = weak.target(weak.annotate(0, label), out_label, side)
    assert (out_label == 2).sum() == 0 and allowed[2].sum() == 15


def test_image_and_tile_tags(scenes):
    source, labels = scenes
    label = labels[0]
    present = np.isin(np.arange(8), np.unique(label))
    image = WeakLabels("image", source.classes).label(0, label)
    assert np.array_equal(image[:, 5, 5], present) and (image.sum(0) == present.sum()).all()
    tiles = WeakLabels("crop:32x64", source.classes, seed=1).label(0, label)
    ys, xs = np.nonzero(label != 255)
    assert tiles[label[ys, xs], ys, xs].all()
    assert tiles.sum(0).mean() < present.sum() - 2  # tiles say more than the image's tags


def test_set_loss_and_partial_cross_entropy():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    allowed = torch.zeros(1, 3, 2, 2, dtype=torch.bool)
    allowed[0, 1] = True  # one class: the cross-entropy
    ce = torch.nn.functional.cross_entropy(logits, torch.ones(1, 2, 2, dtype=torch.long))
    assert AllowedSetLoss()(logits, allowed).item() == pytest.approx(ce.item(), rel=1e-6)
    allowed[0, :, 0, 0] = True  # every class: says nothing, left out of the mean
    assert AllowedSetLoss()(logits, allowed).item() == pytest.approx(
        -torch.log_softmax(logits, 1)[0, 1].flatten()[1:].mean().item(), rel=1e-6)
    unlabelled = torch.full((1, 2, 2), 255)
    value = Partial(CrossEntropy())(logits, unlabelled)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_dataset_gives_weak_targets_and_validity(scenes):
    source, _ = scenes
    transform = Compose([RandomScale((0.5, 0.5)), RandomCrop((160, 200))])
    ds = TorchSegmentationDataset(source, transform, weak=WeakLabels("boxes", source.classes), valid=True)
    x, allowed, valid = ds[0]
    assert x.shape == (3, 160, 200) and allowed.shape == (8, 160, 200) and allowed.dtype == torch.bool
    assert valid.shape == (160, 200) and valid[:128].eq(1).all() and valid[128:].eq(0).all()
    assert not allowed[:, 128:].any()
    sparse = TorchSegmentationDataset(source, transform, weak=WeakLabels("points", source.classes))[0][1]
    assert sparse.dtype == torch.int64 and sparse.shape == (160, 200) and 0 < (sparse != 255).sum() < 40


def test_weak_labels_command_writes_a_folder_dataset(tmp_path, cli_here):
    out = tmp_path / "weak"
    r = cli_here("weak-labels", "--data", "synthetic:3", "--mode", "scribbles", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["images"] == 3 and 0.005 < summary["labelled_fraction"] < 0.1
    written = open_dataset(f"folder:{out / 'images'},{out / 'labels'}")
    dense = SyntheticSource("train", 3)
    assert written.classes == dense.classes and len(written) == 3
    for i in range(3):
        image, sparse = written[i]
        true_image, true_label = dense[i]
        marked = sparse != 255
        assert np.array_equal(image, true_image) and np.array_equal(sparse[marked], true_label[marked])
        assert np.array_equal(sparse, WeakLabels("scribbles", dense.classes).label(i, true_label))
    again = cli_here("weak-labels", "--data", "synthetic:2", "--mode", "points", "--out", str(out))
    assert again.returncode == 0, again.stderr  # its own earlier output may be replaced
    assert len(open_dataset(f"folder:{out / 'images'},{out / 'labels'}")) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    refused = cli_here("weak-labels", "--data", "synthetic:2", "--mode", "points", "--out", str(foreign))
    assert refused.returncode == 1 and "refusing" in refused.stderr and (foreign / "notes.txt").exists()
