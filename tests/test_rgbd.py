"""RGB-D (ACNet): depth maps from the synthetic scenes and depth folders, the two-input deploy graph, and the
depth carried through verification, calibration, eval, run and training transforms."""

import json

import numpy as np
import onnx
import pytest
from conftest import bundle_group
from PIL import Image

from edgeseg.calibration.readers import load_calibration_set
from edgeseg.data import open_dataset
from edgeseg.data.depth import find_depth, read_depth
from edgeseg.data.geometry import resize_labels
from edgeseg.data.synthetic import ROAD, SKY
from edgeseg.data.transforms import train_transforms
from edgeseg.errors import EdgesegError
from edgeseg.runtime.load import load_runner

SIZE = (64, 128)


@pytest.fixture(scope="module")
def rgbd_bundle(registry_bundle):
    """ACNet at 64×128 with 8 classes, labels and logits, verified on 2 synthetic scenes with their depth: the
    registry-wide bundle (tests/conftest.py), exported once for test_export.py and these tests (read-only)."""
    bundle = registry_bundle("acnet").bundle
    assert tuple(bundle.input_size) == SIZE and bundle.model.num_classes == 8
    return bundle


@pytest.fixture(scope="module")
def rgbd_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgbd")
    (root / "img").mkdir()
    (root / "depth").mkdir()
    source = open_dataset("synthetic:3")
    for i in range(3):
        image, _, depth = source.rgbd(i)
        Image.fromarray(image).save(root / "img" / f"f{i}.png")
        if i < 2:
            Image.fromarray((depth * 1000).astype(np.uint16)).save(root / "depth" / f"f{i}.png")
        else:
            np.save(root / "depth" / f"f{i}.npy", depth)
    return root


def test_synthetic_depth_follows_the_scene():
    image, label, depth = open_dataset("synthetic:1").rgbd(0)
    assert depth.dtype == np.float32 and depth.shape == label.shape == image.shape[:2]
    assert (depth[label == SKY] == 0).all()
    road_rows = [r for r in range(label.shape[0]) if (label[r] == ROAD).any()]
    near, far = road_rows[-1], road_rows[len(road_rows) // 4]
    assert depth[near][label[near] == ROAD].mean() < depth[far][label[far] == ROAD].mean()
    assert np.array_equal(open_dataset("synthetic:1")[0][1], label)  # same scene with or without depth


def test_depth_files_read_in_metres_and_resize_by_nearest(rgbd_folder):
    png = read_depth(find_depth(rgbd_folder / "depth", "f0"))
    npy = read_depth(find_depth(rgbd_folder / "depth", "f2"))
    assert png.dtype == npy.dtype == np.float32 and png.max() <= 80.0 and npy.max() > 1.0
    small = resize_labels(png, (32, 64))
    assert set(np.unique(small)) <= set(np.unique(png))  # nothing interpolated
    with pytest.raises(EdgesegError, match="no depth map for nope"):
        find_depth(rgbd_folder / "depth", "nope")
    (rgbd_folder / "bad.png").write_bytes(b"not a png")
    with pytest.raises(EdgesegError, match="cannot decode depth"):
        read_depth(rgbd_folder / "bad.png")


def test_transforms_move_depth_with_the_geometry_only():
    image, label, depth = open_dataset("synthetic:1").rgbd(0)
    t = train_transforms((64, 96), scales=(0.5, 0.5), jitter=0.3)
    rng = np.random.default_rng(3)
    out_image, out_label, out_depth = t(image, label, rng, depth=depth)
    assert out_depth.shape == out_label.shape == (64, 96)
    assert (out_depth[out_label == SKY] == 0).all()  # still aligned with the labels after scale/crop/flip
    assert set(np.unique(out_depth)) <= set(np.unique(depth)) | {0.0}
    same = t(image, label, np.random.default_rng(3))
    assert np.array_equal(same[1], out_label)  # the depth does not change the random draws


@bundle_group("acnet")
def test_bundle_has_two_inputs_and_verifies_on_data_with_depth(rgbd_bundle):
    graph = onnx.load(str(rgbd_bundle.path("model.onnx"))).graph
    assert [i.name for i in graph.input] == ["image", "depth"]
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    m = rgbd_bundle.manifest
    assert [s.name for s in m.inputs] == ["image", "depth"] and rgbd_bundle.input_names == ("image", "depth")
    assert m.report("verification")["label_agreement"] >= 0.999
    checks = json.loads(rgbd_bundle.path("verify.json").read_text())["checks"]
    assert any(c["source"] == "data" for c in checks)


@bundle_group("acnet")
def test_runners_use_the_depth(rgbd_bundle):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    near, far = np.full((1, *SIZE), 1.0, np.float32), np.full((1, *SIZE), 9.0, np.float32)
    for backend in ("onnxruntime", "torch"):
        with load_runner(rgbd_bundle.root, backend) as runner:
            assert [s.name for s in runner.inputs()] == ["image", "depth"]
            a = runner.infer({"image": image, "depth": near})["logits"]
            b = runner.infer({"image": image, "depth": far})["logits"]
            assert not np.allclose(a, b)


@bundle_group("acnet")
@pytest.mark.openvino
def test_openvino_runs_the_two_input_bundle_like_onnxruntime(rgbd_bundle):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 9.0, (1, *SIZE)).astype(np.float32)
    with load_runner(rgbd_bundle.root, "openvino") as ov, load_runner(rgbd_bundle.root, "onnxruntime") as ort:
        assert [s.name for s in ov.inputs()] == ["image", "depth"] and ov.inputs() == ort.inputs()
        a, b = ov.infer({"image": image, "depth": depth}), ort.infer({"image": image, "depth": depth})
        assert np.mean(a["labels"] == b["labels"]) > 0.999
        far = ov.infer({"image": image, "depth": np.full((1, *SIZE), 9.0, np.float32)})["logits"]
        assert not np.allclose(a["logits"], far)


def test_calibration_feeds_carry_depth(rgbd_folder):
    calib = load_calibration_set("synthetic:3", SIZE, depth=True)
    feed = next(calib.feeds(2))
    assert feed["image"].shape == (2, *SIZE, 3) and feed["depth"].shape == (2, *SIZE)
    assert feed["depth"].dtype == np.float32
    folder = load_calibration_set(str(rgbd_folder / "img"), SIZE, depth=True, depth_dir=rgbd_folder / "depth")
    assert len(folder.depths) == len(folder.images) == 3
    with pytest.raises(EdgesegError, match="--calib-depth"):
        load_calibration_set(str(rgbd_folder / "img"), SIZE, depth=True)


@bundle_group("acnet")
def test_eval_and_run_through_the_cli(rgbd_bundle, rgbd_folder, cli_here, tmp_path):
    cli = cli_here
    r = cli("eval", str(rgbd_bundle.root), "--data", "synthetic", "--max-images", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert 0 <= json.loads(r.stdout)["miou"] <= 1
    out = tmp_path / "labels"
    r = cli("run", str(rgbd_bundle.root), "--source", str(rgbd_folder / "img"), "--depth",
            str(rgbd_folder / "depth"), "--sink", f"labels:{out}")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    r = cli("run", str(rgbd_bundle.root), "--source", str(rgbd_folder / "img"))
    assert r.returncode == 1 and "--depth" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr


def test_a_dataset_without_depth_is_refused_for_rgbd(tmp_path):
    from fixtures import make_folder

    images, labels = make_folder(tmp_path)
    source = open_dataset(f"folder:{images},{labels}")
    with pytest.raises(EdgesegError, match="no depth maps"):
        source.rgbd(0)


def test_a_folder_dataset_takes_a_depth_folder(tmp_path):
    from fixtures import make_folder

    images, labels = make_folder(tmp_path)
    source = open_dataset(f"folder:{images},{labels}")
    (tmp_path / "depth").mkdir()
    for i in range(len(source)):
        h, w = source[i][1].shape
        np.save(tmp_path / "depth" / f"{source.sample_id(i)}.npy", np.full((h, w), 2.5, np.float32))
    with_depth = open_dataset(f"folder:{images},{labels},depth={tmp_path / 'depth'}")
    image, label, depth = with_depth.rgbd(0)
    assert depth.shape == label.shape and float(depth.mean()) == 2.5
    with pytest.raises(EdgesegError, match="depth folder .* not found"):
        open_dataset(f"folder:{images},{labels},depth={tmp_path / 'nope'}")
