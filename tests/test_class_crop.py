"""Class-uniform crops (edgeseg.data.class_crop): centred on the chosen class, reproducible from the generator,
each present class equally often whatever its area, never the ignore index."""

import numpy as np
import pytest

from edgeseg.data.class_crop import ClassUniformCrop, class_centred_origin
from edgeseg.data.transforms import RandomCrop, train_transforms
from edgeseg.errors import EdgesegError


def _areas():
    """Class 0 on most of the image, class 1 a band, class 2 a few pixels, class 3 one pixel, ignore a block."""
    lab = np.zeros((60, 80), np.uint8)
    lab[:, 60:] = 1
    lab[30:33, 10:13] = 2
    lab[45, 40] = 3
    lab[:20, :30] = 255
    return np.zeros((*lab.shape, 3), np.uint8), lab


def _chosen_classes(crop, lab, seeds):
    """With a 1×1 crop centred exactly on the chosen pixel, the crop's one label is the chosen class."""
    img = np.zeros((*lab.shape, 3), np.uint8)
    return np.array([int(crop(img, lab, np.random.default_rng(s))[1][0, 0]) for s in seeds])


def test_centred_on_a_pixel_of_the_class_and_shifted_inside_near_borders():
    lab = np.zeros((40, 60), np.uint8)
    lab[17, 23] = 5
    assert class_centred_origin(lab, (9, 11), 5, np.random.default_rng(0)) == (17 - 4, 23 - 5)
    lab[:] = 0
    lab[1, 58] = 5  # at the top-right corner: the crop is shifted into the frame and still holds the pixel
    y, x = class_centred_origin(lab, (9, 11), 5, np.random.default_rng(0))
    assert (y, x) == (0, 60 - 11) and lab[y:y + 9, x:x + 11].max() == 5
    _, lab = _areas()
    for seed in range(20):  # a class of many pixels: the centre is one of them
        y, x = class_centred_origin(lab, (7, 9), 1, np.random.default_rng(seed))
        assert lab[y + 3, x + 4] == 1


def test_each_present_class_equally_often_never_the_ignore_index():
    _, lab = _areas()
    chosen = _chosen_classes(ClassUniformCrop((1, 1), fraction=1.0), lab, range(2000))
    freq = np.bincount(chosen, minlength=4)[:4] / chosen.size
    assert set(np.unique(chosen)) == {0, 1, 2, 3}  # 255 has the largest area after class 0 and never comes
    assert np.all(np.abs(freq - 0.25) < 0.04), freq  # ±4 standard deviations of 2000 draws
    uniform = _chosen_classes(RandomCrop((1, 1)), lab, range(2000))
    assert np.mean(uniform == 3) < 0.01 and np.mean(uniform == 255) > 0.05  # what plain crops give


def test_fraction_of_crops_is_class_centred():
    _, lab = _areas()
    chosen = _chosen_classes(ClassUniformCrop((1, 1), fraction=0.5), lab, range(2000))
    assert abs(np.mean(chosen == 3) - 0.5 * 0.25) < 0.03  # the one-pixel class: only through the centred half
    assert abs(np.mean(chosen == 255) - 0.5 * np.mean(lab == 255)) < 0.04  # the other half: uniform crops


def test_reproducible_from_the_generator():
    img, lab = _areas()
    img = np.random.default_rng(9).integers(0, 255, img.shape, dtype=np.uint8)
    crop = ClassUniformCrop((16, 24), fraction=1.0)
    first = [crop(img, lab, np.random.default_rng(s)) for s in range(8)]
    again = [crop(img, lab, np.random.default_rng(s)) for s in range(8)]
    for (a_img, a_lab), (b_img, b_lab) in zip(first, again):
        assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert len({a_img.tobytes() for a_img, _ in first}) > 4  # seeds differ


def test_padded_when_smaller_and_fraction_checked():
    img, lab = np.zeros((6, 8, 3), np.uint8), np.full((6, 8), 2, np.uint8)
    out_img, out_lab = ClassUniformCrop((10, 12), fraction=1.0)(img, lab, np.random.default_rng(0))
    assert out_lab.shape == (10, 12) and (out_lab[6:] == 255).all() and (out_lab[:6, :8] == 2).all()
    with pytest.raises(ValueError, match="fraction"):
        ClassUniformCrop((4, 4), fraction=1.5)


def test_train_transforms_and_the_trainer_use_it(tmp_path):
    from edgeseg.train.config import TrainConfig
    from edgeseg.train.trainer import Trainer

    assert type(train_transforms((8, 8)).transforms[1]) is RandomCrop
    assert train_transforms((8, 8), class_uniform=0.3).transforms[1].fraction == 0.3
    config = TrainConfig(model="lednet", data="synthetic:4", out=str(tmp_path), crop=(32, 64), workers=0,
                         class_uniform=0.7)
    crop = Trainer(config)._loader().dataset.transform.transforms[1]
    assert isinstance(crop, ClassUniformCrop) and crop.fraction == 0.7
    with pytest.raises(EdgesegError, match="class_uniform"):
        TrainConfig(class_uniform=1.5).validate()
