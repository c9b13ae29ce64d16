"""ONNX files that say what they are: the ``edgeseg`` document and the OpenVINO Model API keys in metadata_props."""

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import bundle_group
from fixtures import make_folder
from onnx import TensorProto, helper

from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import Bundle, open_bundle, sha256_file, tensor_specs
from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo
from edgeseg.runtime.onnx_metadata import (
    FORMAT,
    FORMAT_VERSION,
    KEY,
    metadata_document,
    model_api_props,
    owned_key,
    read_metadata,
    stamp_bundle_file,
    stamp_onnx,
)
from edgeseg.runtime.onnx_props import METADATA_PROPS, fields, rewrite_props

H, W = 8, 16
FOREIGN = {"onnxsim.note": "kept"}  # another tool's entry: a stamp leaves it


def _tiny_onnx(path, h=H, w=W, props=FOREIGN):
    """uint8 image (1, h, w, 3) -> uint8 labels (1, h, w), the brightest channel; with a model-local function,
    so that the file has a field numbered above metadata_props (as onnx.save orders them)."""
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["f", "axes"], ["m"], keepdims=0),
             helper.make_node("Cast", ["m"], ["labels"], to=TensorProto.UINT8)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, h, w, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, h, w])],
                              [helper.make_tensor("axes", TensorProto.INT64, [1], [3])])
    twice = helper.make_function("local", "twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
                                 [helper.make_opsetid("", 18)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
                              functions=[twice])
    helper.set_model_props(model, dict(props))
    onnx.save(model, str(path))
    return path


def _manifest(classes=("road", "sky", "car"), *, frame=None, frame_format="rgb", resize="stretch", size=(H, W)):
    inputs, outputs = tensor_specs(("image",), ("labels",), 1, size, len(classes), frame=frame,
                                   frame_format=frame_format)
    model = ModelInfo("lednet", list(classes), palette=[[i, 2 * i, 3 * i] for i in range(len(classes))],
                      mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2], ignore_index=255)
    return Manifest(model=model, input=InputSpec(size, 1, resize, frame=frame, frame_format=frame_format),
                    inputs=inputs, outputs=outputs)


def _without_metadata(data: bytes) -> bytes:
    return b"".join(data[start:end] for number, _, start, end in fields(data) if number != METADATA_PROPS)


def _model_api_view(model) -> dict:
    """What the Model API reads from an ONNX file (its adapters' ``load_parameters_from_onnx``)."""
    return {" ".join(p.key.split()[1:]): p.value for p in model.metadata_props if "model_info" in p.key.split()}


def test_a_stamp_changes_metadata_props_alone(tmp_path):
    path = _tiny_onnx(tmp_path / "m.onnx")
    before = path.read_bytes()
    stamp_onnx(path, _manifest(), "fp16", "a" * 64, parent_file="model.onnx")
    after = path.read_bytes()
    assert _without_metadata(after) == _without_metadata(before)  # every other field, byte for byte
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.SerializeToString() == after  # the entries sit where onnx.save writes them
    props = {p.key: p.value for p in model.metadata_props}
    assert props["onnxsim.note"] == "kept" and json.loads(props[KEY])["precision"] == "fp16"
    original = onnx.load_from_string(before)
    del model.metadata_props[:], original.metadata_props[:]
    assert model.SerializeToString() == original.SerializeToString()
    image = {"image": np.random.default_rng(0).integers(0, 256, (1, H, W, 3), dtype=np.uint8)}
    assert (ort.InferenceSession(after).run(None, image)[0] == ort.InferenceSession(before).run(None, image)[0]).all()
    stamp_onnx(path, _manifest(), "int8", "b" * 64, parent_file="model.onnx", target="cpu")  # a second stamp replaces
    model = onnx.load(str(path))
    keys = [p.key for p in model.metadata_props]
    assert keys.count(KEY) == 1 and keys.count("model_info labels") == 1 and "onnxsim.note" in keys
    meta = read_metadata(path)
    assert (meta.precision, meta.target, meta.parent_sha256) == ("int8", "cpu", "b" * 64)
    for source in (path.read_bytes(), model):  # the file's bytes, or a loaded ModelProto
        assert read_metadata(source).document == meta.document


def test_the_document_round_trips_with_the_frame_geometry(tmp_path):
    manifest = _manifest(frame=(48, 96), frame_format="bgr", resize="letterbox")
    path = _tiny_onnx(tmp_path / "m.onnx", 48, 96)
    written = stamp_onnx(path, manifest)
    meta = read_metadata(path)
    assert meta.document == written and written["format"] == FORMAT and written["format_version"] == FORMAT_VERSION
    assert written["input"] == {"size": [H, W], "batch": 1, "resize": "letterbox", "frame": [48, 96],
                                "frame_format": "bgr"}
    assert written["inputs"] == [{"name": "image", "dtype": "uint8", "shape": [1, 48, 96, 3], "layout": "NHWC",
                                  "color": "BGR"}]
    assert written["normalize"] == {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}
    assert written["parent"] is None and written["precision"] == "fp32"
    assert meta.model == manifest.model and meta.input == manifest.input and meta.outputs == manifest.outputs
    assert (meta.frame_size, meta.resize_mode, meta.host_resize, meta.frame_bgr) == ((48, 96), "letterbox",
                                                                                     "stretch", True)


def test_model_api_keys_follow_its_conventions(tmp_path):
    classes = ("road surface", "traffic\tsign", "", "sky")
    path = _tiny_onnx(tmp_path / "m.onnx", 48, 96)
    stamp_onnx(path, _manifest(classes, frame=(48, 96)))
    view = _model_api_view(onnx.load(str(path)))
    assert view == {"model_type": "Segmentation", "labels": "road_surface traffic_sign _ sky",
                    "embedded_processing": "True", "orig_height": "48", "orig_width": "96"}
    assert len(view["labels"].split()) == len(classes)  # label i is class i, as the Model API splits it
    manifest = _manifest()
    [image], [logits, labels] = tensor_specs(("image",), ("logits", "labels"), 1, (H, W), 3)
    crf = metadata_document(manifest, graph="crf", inputs=[logits, image], outputs=[labels])
    assert model_api_props(crf) == {} and crf["normalize"] is None  # the standalone CRF takes logits
    assert model_api_props(metadata_document(manifest))["model_info orig_height"] == str(H)
    assert owned_key("model_info labels") and owned_key(KEY) and not owned_key("onnxsim.note")


def _document(**change):
    document = metadata_document(_manifest(), "fp16", "c" * 64, parent_file="model.onnx")
    return json.dumps({**document, **change})


BAD_DOCUMENTS = {
    "not JSON": ("{", "Expecting"),
    "not an object": ("[1]", FORMAT),
    "another format": (json.dumps({"format": "x", "format_version": 1}), FORMAT),
    "newer": (_document(format_version=FORMAT_VERSION + 1), "newer"),
    "version a bool": (_document(format_version=True), "format_version"),
    "classes not a list": (_document(model={"name": "lednet", "classes": "road"}), "classes"),
    "parent not a sha256": (_document(parent={"file": "model.onnx", "sha256": "../x"}), "sha256"),
    "unknown precision": (_document(precision="int4"), "precision"),
    "inputs disagree": (_document(input={"size": [H * 2, W], "batch": 1, "resize": "stretch"}), "shape"),
    "too large": (_document(producer="x" * (1 << 20)), "characters"),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS)
def test_a_bad_document_is_ignored_with_a_warning(tmp_path, caplog, case):
    text, reason = BAD_DOCUMENTS[case]
    path = _tiny_onnx(tmp_path / "m.onnx", props={KEY: text})
    with caplog.at_level(logging.WARNING):
        assert read_metadata(path) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and reason in warnings[0], warnings


def test_a_file_that_is_no_onnx_reads_as_none_quietly_and_is_not_stamped(tmp_path, caplog):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(_tiny_onnx(tmp_path / "m.onnx").read_bytes()[:-9])
    with caplog.at_level(logging.WARNING):
        assert read_metadata(junk) is None and read_metadata(cut) is None
        assert read_metadata(tmp_path / "m.onnx") is None  # ONNX, never stamped
    assert not caplog.records  # loading it says why, once
    with pytest.raises(EdgesegError, match="not an ONNX model"):
        stamp_onnx(junk, _manifest())
    assert junk.read_bytes() == b"\x00garbage" * 10
    with pytest.raises(EdgesegError, match="cannot stamp"):
        metadata_document(_manifest(), "int4")


def test_reading_needs_neither_torch_nor_onnx(tmp_path):
    path = _tiny_onnx(tmp_path / "m.onnx")
    stamp_onnx(path, _manifest())
    code = ("import sys; sys.modules.update(onnx=None, torch=None, onnxruntime=None); "
            "from edgeseg.runtime.onnx_metadata import read_metadata; "
            f"print(read_metadata({str(path)!r}).summary())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("lednet, 3 classes, fp32, image uint8 1x8x16x3 (8x16 stretch)")


def test_the_crf_graphs_say_which_they_are(tmp_path):
    from edgeseg.export.pipeline import _stamp_crf

    for name in ("model.onnx", "crf.onnx", "model.crf.onnx"):
        _tiny_onnx(tmp_path / name)
    bundle = Bundle(tmp_path, _manifest())
    bundle.add_file("model.onnx", "onnx", precision="fp32")
    _stamp_crf(bundle, 1, (H, W), 3)
    standalone, fused = read_metadata(tmp_path / "crf.onnx"), read_metadata(tmp_path / "model.crf.onnx")
    assert standalone.graph == "crf" and [s.name for s in standalone.inputs] == ["logits", "image"]
    assert standalone.inputs[0].shape == [1, 3, H, W] and standalone.model_api == {}
    assert fused.graph == "model+crf" and [s.name for s in fused.outputs] == ["labels"]
    assert fused.model_api["model_info model_type"] == "Segmentation"
    assert standalone.parent_sha256 == fused.parent_sha256 == bundle.files["model.onnx"].sha256


def test_a_bundle_file_names_the_listed_fp32_model_as_parent_but_that_model_none(tmp_path):
    for name in ("model.onnx", "model.fp16.onnx"):
        _tiny_onnx(tmp_path / name)
    bundle = Bundle(tmp_path, _manifest())
    assert stamp_bundle_file(bundle, "model.fp16.onnx", precision="fp16")["parent"] is None  # no fp32 listed yet
    bundle.add_file("model.onnx", "onnx", precision="fp32")
    assert stamp_bundle_file(bundle, "model.onnx")["parent"] is None  # a file cannot hold its own hash
    assert stamp_bundle_file(bundle, "model.fp16.onnx", precision="fp16")["parent"] == {
        "file": "model.onnx", "sha256": bundle.files["model.onnx"].sha256}  # as listed


# The session's exported lednet bundle (5 classes, labels and logits) and its precision variants.

def _assert_says_what_the_manifest_says(meta, manifest):
    doc = meta.document
    assert doc["model"]["name"] == manifest.model.name and doc["model"]["classes"] == manifest.model.classes
    assert doc["model"]["palette"] == manifest.model.palette
    assert doc["normalize"] == {"mean": manifest.model.mean, "std": manifest.model.std}
    assert doc["input"] == manifest.input.to_dict()
    assert doc["inputs"] == [s.to_dict() for s in manifest.inputs]
    assert doc["outputs"] == [s.to_dict() for s in manifest.outputs]
    h, w = manifest.input.feed_size
    assert meta.model_api == {"model_info model_type": "Segmentation",
                              "model_info labels": " ".join(manifest.model.classes),
                              "model_info embedded_processing": "True", "model_info orig_height": str(h),
                              "model_info orig_width": str(w)}


@bundle_group("lednet")
def test_the_exported_model_says_what_its_manifest_says(registry_bundle):
    bundle = registry_bundle("lednet").bundle
    path = bundle.path("model.onnx")  # its sha256 in the manifest is the stamped file's
    meta = read_metadata(path)
    _assert_says_what_the_manifest_says(meta, bundle.manifest)
    assert (meta.precision, meta.parent_file, meta.parent_sha256) == ("fp32", None, None)


@pytest.fixture(scope="module")
def variants(registry_bundle, tmp_path_factory):
    """A copy of the lednet bundle with FP16 and INT8 variants (calibrated on three images, no gate)."""
    from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle

    root = tmp_path_factory.mktemp("variants")
    images, _ = make_folder(root / "calib")
    shutil.copytree(registry_bundle("lednet").bundle.root, root / "b")
    calibrate_bundle(root / "b", CalibrationOptions(calib_data=str(images), calib_size=3, method="minmax",
                                                    max_search_steps=0))
    return open_bundle(root / "b")


@bundle_group("lednet")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_variants_name_the_fp32_file_as_their_parent(variants, precision):
    name = variants.find("onnx", precision)
    meta = read_metadata(variants.path(name))  # listed with the stamped file's sha256
    _assert_says_what_the_manifest_says(meta, variants.manifest)
    fp32 = variants.entry("model.onnx")
    assert meta.precision == precision and meta.target == variants.entry(name).target
    assert meta.parent_file == "model.onnx" and meta.parent_sha256 == fp32.sha256
    assert fp32.sha256 == sha256_file(variants.root / "model.onnx")


@bundle_group("lednet")
def test_lint_shows_the_metadata(variants, tmp_path, cli_here):
    r = cli_here("lint", str(variants.root / "model.int8.onnx"), "--json")
    meta = json.loads(r.stdout)["metadata"]
    assert meta["precision"] == "int8" and meta["target"] == "tensorrt"
    assert meta["parent"]["sha256"] == variants.entry("model.onnx").sha256
    assert meta["model_api"]["labels"] == "class_0 class_1 class_2 class_3 class_4"
    table = cli_here("lint", str(variants.root / "model.int8.onnx")).stdout
    sha = variants.entry("model.onnx").sha256[:12]
    assert f"metadata: lednet, 5 classes, int8 (tensorrt), image uint8 1x64x128x3 (64x128 stretch), parent " \
           f"model.onnx sha256 {sha}" in table
    bare = cli_here("lint", str(_tiny_onnx(tmp_path / "bare.onnx")), "--json")
    assert bare.returncode == 0 and json.loads(bare.stdout)["metadata"] is None


@pytest.fixture
def five_classes(tmp_path):
    """A labelled folder dataset of five classes named unlike the bundle's."""
    images, labels = make_folder(tmp_path / "data")
    (tmp_path / "data" / "classes.txt").write_text("a\nb\nc\nd\ne\n")
    return f"folder:{images},{labels}"


def _eval(cli, path, data):
    r = cli("eval", str(path), "--data", data, "--max-images", "1", "--backend", "onnxruntime", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


@bundle_group("lednet")
def test_eval_of_a_file_copied_out_of_its_bundle(registry_bundle, tmp_path, five_classes, cli_here):
    bundle = registry_bundle("lednet").bundle
    copy = tmp_path / "out" / "copy.onnx"
    copy.parent.mkdir()
    shutil.copy(bundle.path("model.onnx"), copy)
    result, _ = _eval(cli_here, copy, five_classes)
    assert result["classes"] == bundle.model.classes and result["model"] == "lednet"
    assert result["metadata"]["model"]["name"] == "lednet" and result["metadata"]["parent"] is None
    assert "(stretch)" in result["resolution"]
    table = cli_here("eval", str(copy), "--data", five_classes, "--max-images", "1").stdout
    assert "metadata: lednet, 5 classes, fp32, image uint8 1x64x128x3 (64x128 stretch)" in table
    names = ["road surface", "sky", "car", "tree", "person"]  # the same graph, said to be letterboxed
    relabelled = replace(bundle.manifest, model=replace(bundle.model, classes=names),
                         input=replace(bundle.manifest.input, resize="letterbox"))
    stamp_onnx(copy, relabelled)
    result, _ = _eval(cli_here, copy, five_classes)
    assert result["classes"] == names and "(letterbox)" in result["resolution"]
    stamp_onnx(copy, replace(bundle.manifest, model=replace(bundle.model, classes=names[:3])))
    r = cli_here("eval", str(copy), "--data", five_classes, "--max-images", "1")
    assert r.returncode == 1 and "predicts 3 classes" in r.stderr


@bundle_group("lednet")
@pytest.mark.parametrize("case", ["stripped", "corrupt"])
def test_eval_without_usable_metadata_works_as_before(registry_bundle, tmp_path, five_classes, cli_here, case):
    copy = tmp_path / "copy.onnx"
    data = registry_bundle("lednet").bundle.path("model.onnx").read_bytes()
    props = {KEY: '{"format": "edgeseg-onnx-metadata", "format_version": 1, "model": 7'} if case == "corrupt" else {}
    copy.write_bytes(rewrite_props(data, props, owned_key))
    result, stderr = _eval(cli_here, copy, five_classes)
    assert result["classes"] == ["a", "b", "c", "d", "e"] and result["model"] == "copy"
    assert result["metadata"] is None and "(stretch)" in result["resolution"]
    warned = [line for line in stderr.splitlines() if "metadata is ignored" in line]
    assert len(warned) == (case == "corrupt")


@bundle_group("lednet")
def test_eval_of_a_copied_out_variant_reports_its_precision(variants, tmp_path, five_classes, cli_here):
    copy = tmp_path / "int8.onnx"
    shutil.copy(variants.path("model.int8.onnx"), copy)
    result, _ = _eval(cli_here, copy, five_classes)
    assert result["precision"] == "int8" and result["metadata"]["parent"]["file"] == "model.onnx"
