import numpy as np

from edgeseg.data.transforms import ColorJitter, RandomCrop, RandomHorizontalFlip, RandomScale, train_transforms


def _sample():
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    lab = np.zeros((6, 8), np.uint8)
    lab[:, 4:] = 3
    return img, lab


def test_crop_pads_labels_with_ignore():
    img, lab = _sample()
    out_img, out_lab = RandomCrop((10, 12))(img, lab, np.random.default_rng(0))
    assert out_img.shape == (10, 12, 3) and out_lab.shape == (10, 12)
    assert (out_lab[6:] == 255).all() and (out_lab[:, 8:] == 255).all() and (out_img[6:] == 0).all()


def test_scale_keeps_label_values_nearest():
    img, lab = _sample()
    out_img, out_lab = RandomScale((1.7, 1.7))(img, lab, np.random.default_rng(0))
    assert out_lab.shape == (10, 14) and set(np.unique(out_lab)) <= {0, 3}
    assert out_img.shape == (10, 14, 3)


def test_flip_moves_image_and_label_together():
    img, lab = _sample()
    out_img, out_lab = RandomHorizontalFlip(p=1.0)(img, lab, np.random.default_rng(0))
    assert np.array_equal(out_lab, lab[:, ::-1]) and np.array_equal(out_img, img[:, ::-1])


def test_jitter_changes_image_not_label():
    img, lab = _sample()
    out_img, out_lab = ColorJitter(0.5, 0.5, 0.5)(img, lab, np.random.default_rng(1))
    assert out_lab is lab and not np.array_equal(out_img, img)


def test_pipeline_is_reproducible_from_the_generator():
    img, lab = _sample()
    t = train_transforms((4, 4))
    a = t(img, lab, np.random.default_rng(5))
    b = t(img, lab, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (4, 4, 3) and a[1].shape == (4, 4)
