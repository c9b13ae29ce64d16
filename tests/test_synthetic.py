import numpy as np

from edgeseg.data.synthetic import CLASSES, render_scene
from edgeseg.data.synthetic_source import SyntheticSource


def test_deterministic_per_seed_and_seeds_differ():
    a_img, a_lab = render_scene(3, (64, 128))
    b_img, b_lab = render_scene(3, (64, 128))
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    c_img, _ = render_scene(4, (64, 128))
    assert not np.array_equal(a_img, c_img)


def test_labels_in_range_and_every_class_appears():
    seen = set()
    for seed in range(12):
        img, lab = render_scene(seed, (128, 256))
        assert img.dtype == np.uint8 and img.shape == (128, 256, 3)
        assert lab.max() < len(CLASSES)
        seen |= set(np.unique(lab).tolist())
    assert seen == set(range(len(CLASSES)))


def test_train_and_val_use_disjoint_seeds():
    train, val = SyntheticSource("train", 5), SyntheticSource("val")
    train_ids = {train.sample_id(i) for i in range(len(train))}
    val_ids = {val.sample_id(i) for i in range(len(val))}
    assert not train_ids & val_ids
    assert not np.array_equal(train[0][0], val[0][0])


def test_colour_alone_does_not_separate_classes():
    """Road and sidewalk overlap in colour, so a per-pixel colour lookup cannot solve the task."""
    road, walk = [], []
    for seed in range(6):
        img, lab = render_scene(seed, (128, 256))
        road.append(img[lab == 0].mean(0))
        walk.append(img[lab == 1].mean(0))
    road, walk = np.array(road), np.array(walk)
    assert np.abs(road.mean(0) - walk.mean(0)).max() < 3 * (road.std(0) + walk.std(0)).max()


def _row_runs(mask):
    """``(row, start, end)`` of every horizontal run of ``mask`` (its objects' widths, row by row)."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    return rows, starts, np.nonzero(edges == -1)[1]


def _has_thin_tall_object(mask, width=3, rows=8):
    """Whether ``mask`` holds a vertical structure at most ``width`` px wide over ``rows`` rows (a distant pole
    or person; the tips of near ones' round shapes are not that tall)."""
    thin = np.zeros(mask.shape, bool)
    for y, start, end in zip(*_row_runs(mask)):
        thin[y, start:end] = end - start <= width
    count = np.cumsum(np.pad(thin, ((1, 0), (0, 0))), axis=0)
    return bool((count[rows:] - count[:-rows] == rows).any())


def test_people_and_poles_are_wide_enough_for_a_head_at_one_eighth_yet_some_are_thin():
    """At the default 256×512 a typical person or pole row is at least one cell of a stride-8 head wide (a
    BiSeNet V2 cannot place thinner ones), and distant ones, 3 px wide or less, remain as on a real camera."""
    from edgeseg.data.synthetic import PERSON, POLE

    labels = [render_scene(seed)[1] for seed in range(1_000_000, 1_000_020)]
    for cls in (PERSON, POLE):
        runs = np.concatenate([end - start for _, start, end in (_row_runs(lab == cls) for lab in labels)])
        assert np.median(runs) >= 8, (CLASSES[cls], np.median(runs))
        assert sum(_has_thin_tall_object(lab == cls) for lab in labels) >= 3, CLASSES[cls]
