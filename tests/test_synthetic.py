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
