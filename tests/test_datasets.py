import numpy as np
import pytest
from fixtures import H, W, make_ade20k, make_camvid, make_cityscapes, make_folder, make_voc

from edgeseg.data import open_dataset, parse_spec, read_image
from edgeseg.errors import EdgesegError


def _check(ds, n, expected_values, num_classes):
    assert len(ds) == n and ds.num_classes == num_classes and len(ds.palette) == num_classes
    image, label = ds[0]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert label.shape == (H, W) and label.dtype == np.uint8
    assert set(np.unique(label).tolist()) == set(expected_values)


@pytest.mark.parametrize("train_ids", [True, False])
def test_cityscapes(tmp_path, train_ids):
    make_cityscapes(tmp_path, train_ids)
    expected = {0, 1, 18, 255} if train_ids else {0, 13, 255, 18}
    _check(open_dataset(f"cityscapes:{tmp_path}", "train"), 2, expected, 19)
    assert len(open_dataset(f"cityscapes:{tmp_path}", "val")) == 1


def test_camvid_void_is_ignored(tmp_path):
    make_camvid(tmp_path)
    _check(open_dataset(f"camvid:{tmp_path}", "val"), 2, {0, 3, 10, 255}, 11)


def test_voc_palette_pngs_give_indices(tmp_path):
    make_voc(tmp_path)
    _check(open_dataset(f"voc:{tmp_path}", "train"), 1, {0, 15, 20, 255}, 21)
    ds = open_dataset(f"voc:{tmp_path / 'VOC2012'}", "val")
    assert ds.sample_id(0) == "2007_000039"


def test_ade20k_shifts_by_one_and_ignores_zero(tmp_path):
    make_ade20k(tmp_path)
    _check(open_dataset(f"ade20k:{tmp_path}", "val"), 2, {255, 0, 149, 12}, 150)


def test_folder_with_classes_file(tmp_path):
    images, labels = make_folder(tmp_path)
    ds = open_dataset(f"folder:{images},{labels}")
    _check(ds, 3, {0, 1, 2, 255}, 3)
    assert ds.classes == ["floor", "wall", "person"]
    assert ds.palette[0] == (10, 20, 30) and ds.palette[2] == (255, 0, 0)


def test_synthetic_spec():
    ds = open_dataset("synthetic:7", "train")
    assert len(ds) == 7 and ds.num_classes == 8
    assert len(open_dataset("synthetic", "val")) == 100


@pytest.mark.parametrize("spec,message", [
    ("kitti:/x", "unknown data spec"),
    ("cityscapes", "needs a path"),
    ("synthetic:zero", "positive number"),
    ("folder:/only_one", "IMAGES,LABELS"),
])
def test_malformed_specs(spec, message):
    with pytest.raises(EdgesegError, match=message):
        parse_spec(spec)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(EdgesegError, match="root .* not found"):
        open_dataset(f"cityscapes:{tmp_path / 'nope'}")
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(EdgesegError, match="gtFine"):
        open_dataset(f"cityscapes:{tmp_path}")
    with pytest.raises(EdgesegError, match="trainannot"):
        (tmp_path / "train").mkdir()
        open_dataset(f"camvid:{tmp_path}")
    with pytest.raises(EdgesegError, match="JPEGImages"):
        open_dataset(f"voc:{tmp_path}")


def test_image_without_label_and_missing_classes_file(tmp_path):
    images, labels = make_folder(tmp_path)
    (labels / "frame1.png").unlink()
    with pytest.raises(EdgesegError, match="no label"):
        open_dataset(f"folder:{images},{labels}")
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(EdgesegError, match="classes"):
        open_dataset(f"folder:{images},{labels}")


def test_undecodable_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(EdgesegError, match="cannot decode image"):
        read_image(bad)
