"""The typed manifest: every section read back as it was written, format 1 read as format 2, records that
check themselves."""

from __future__ import annotations

import copy

import pytest

from edgeseg.runtime.manifest import FORMAT_VERSION, FileEntry, InputSpec, Manifest, ManifestError, ModelInfo

FULL = {
    "format": "edgeseg-bundle", "format_version": FORMAT_VERSION,
    "model": {"name": "lednet", "num_classes": 2, "classes": ["road", "car"], "palette": [[1, 2, 3], [4, 5, 6]],
              "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2], "ignore_index": 255, "paper": "LEDNet (2019)"},
    "input": {"size": [64, 128], "batch": "batch", "resize": "letterbox"},
    "inputs": [{"name": "image", "dtype": "uint8", "shape": ["batch", 64, 128, 3], "layout": "NHWC", "color": "RGB"}],
    "outputs": [{"name": "labels", "dtype": "uint8", "shape": ["batch", 64, 128]}],
    "files": {
        "calib.cache": {"kind": "calibration-cache", "bytes": 10, "sha256": "c" * 64, "precision": "int8"},
        "model.fp16.engine": {"kind": "engine", "bytes": 30, "sha256": "e" * 64, "precision": "fp16",
                              "tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7",
                              "hardware_compatibility": "NONE", "version_compatible": False, "dla_core": 1,
                              "legacy_calibrator": False, "strongly_typed": True, "built_from": "model.fp16.onnx",
                              "built_from_sha256": "f" * 64, "build_seconds": 12.5, "opt_level": 3,
                              "layers": "model.fp16.layers.json"},
        "model.int8.onnx": {"kind": "onnx", "bytes": 20, "sha256": "d" * 64, "precision": "int8",
                            "target": "tensorrt"},
        "verify.json": {"kind": "report", "bytes": 5, "sha256": "a" * 64},
    },
    "source": {"checkpoint": "best.pt", "sha256": "b" * 64},
    "gate": {"max_miou_drop": 1.0, "passed": True},
    "variants": {"fp32": {"file": "model.onnx", "miou": 0.5}},
    "calibration": {"method": "percentile", "images": 8, "target": "tensorrt", "seed": 0, "skipped": 0,
                    "identity": {"onnx_sha256": "a" * 64, "calibration_sha256": "b" * 64, "input_size": [64, 128],
                                 "trt_version": "10.3"}},
    "crf": {"params": {"iterations": 3}, "standalone": "crf.onnx", "fused": "model.crf.onnx",
            "inputs": ["logits", "image"], "files": {"crf.onnx": {"node_count": 40}}},
}


def test_every_section_reads_back_as_written(tmp_path):
    manifest = Manifest.from_dict(copy.deepcopy(FULL), tmp_path / "manifest.json")
    assert manifest.to_dict() == FULL
    engine = manifest.files["model.fp16.engine"].engine
    assert engine is not None and engine.dla_core == 1 and engine.compute_capability == "8.7"
    assert manifest.files["verify.json"].engine is None and manifest.files["verify.json"].model_precision == "fp32"
    assert manifest.calibration is not None and manifest.calibration.identity.input_size == [64, 128]
    assert manifest.input.size == (64, 128) and manifest.input.batch == "batch" and manifest.model.num_classes == 2
    assert manifest.report("gate")["passed"] is True and manifest.report("lint") == {}


def test_format_1_is_read_and_written_back_as_format_2(tmp_path):
    old = {"format": "edgeseg-bundle", "format_version": 1, "model": {"name": "m", "classes": ["a"]},
           "input": {"name": "image", "shape": [2, 8, 16, 3], "size": [8, 16]}, "files": {}}
    manifest = Manifest.from_dict(old, tmp_path / "manifest.json")
    assert manifest.input == InputSpec((8, 16), 2, "stretch")
    assert manifest.input_names == ("image",) and manifest.inputs[0].dtype == "uint8"
    written = manifest.to_dict()
    assert written["format_version"] == 2 and written["input"] == {"size": [8, 16], "batch": 2, "resize": "stretch"}


@pytest.mark.parametrize("build, match", [
    (lambda: ModelInfo("", ["a"]), "model name"),
    (lambda: ModelInfo("m", []), "model.classes"),
    (lambda: ModelInfo("m", ["a"], palette=[[0, 0, 256]]), "palette"),
    (lambda: InputSpec((8, 0)), "input size"),
    (lambda: InputSpec((8, 8), batch=True), "input.batch"),
    (lambda: InputSpec((8, 8), batch="dynamic"), "input.batch"),
    (lambda: FileEntry("onnx", "1", "a" * 64), "file entry"),  # type: ignore[arg-type]
])
def test_records_refuse_bad_values_when_built(build, match):
    with pytest.raises(ManifestError, match=match):
        build()


def test_an_unknown_key_is_dropped_not_kept(tmp_path):
    data = copy.deepcopy(FULL) | {"engines": {"old": 1}}
    assert "engines" not in Manifest.from_dict(data, tmp_path / "manifest.json").to_dict()


def test_the_input_section_and_the_input_tensor_spec_must_agree(tmp_path):
    data = copy.deepcopy(FULL)
    data["input"]["size"] = [32, 128]
    with pytest.raises(ManifestError, match=r"image has shape \['batch', 64, 128, 3\]"):
        Manifest.from_dict(data, tmp_path / "manifest.json")


FRAME = {**copy.deepcopy(FULL), "input": {"size": [64, 128], "batch": "batch", "resize": "letterbox",
                                          "frame": [36, 64], "frame_format": "bgr"},
         "inputs": [{"name": "image", "dtype": "uint8", "shape": ["batch", 36, 64, 3], "layout": "NHWC",
                     "color": "BGR"}],
         "outputs": [{"name": "labels", "dtype": "uint8", "shape": ["batch", 36, 64], "argmax_at": "logits"},
                     {"name": "overlay", "dtype": "uint8", "shape": ["batch", 36, 64, 3], "layout": "NHWC",
                      "color": "BGR", "alpha": 0.4}]}


def test_a_frame_size_input_reads_back_as_written(tmp_path):
    manifest = Manifest.from_dict(copy.deepcopy(FRAME), tmp_path / "manifest.json")
    assert manifest.to_dict() == FRAME
    assert manifest.input.frame == (36, 64) and manifest.input.feed_size == (36, 64)
    assert manifest.input.size == (64, 128) and manifest.input.frame_format == "bgr"
    assert manifest.outputs[1].alpha == 0.4 and manifest.outputs[0].argmax_at == "logits"
    assert "frame" not in Manifest.from_dict(copy.deepcopy(FULL), tmp_path / "m.json").to_dict()["input"]


@pytest.mark.parametrize("change, match", [
    (lambda d: d["input"].update(frame=[36]), "input.frame"),
    (lambda d: d["input"].update(frame=[0, 64]), "input.frame"),
    (lambda d: d["input"].update(frame_format="yuv"), "input.frame_format"),
    (lambda d: d["inputs"][0].update(shape=["batch", 64, 128, 3]), "the input section says"),  # deploy, not frame
    (lambda d: d["inputs"][0].update(color="RGB"), "frames in bgr"),
    (lambda d: d["outputs"][1].update(alpha=1.5), "alpha"),
    (lambda d: d["outputs"][0].update(argmax_at="softmax"), "argmax_at"),
])
def test_a_bad_frame_record_is_refused_on_read_and_write(tmp_path, change, match):
    data = copy.deepcopy(FRAME)
    change(data)
    with pytest.raises(ManifestError, match=match):
        Manifest.from_dict(data, tmp_path / "manifest.json")
    good = Manifest.from_dict(copy.deepcopy(FRAME), tmp_path / "manifest.json")
    if match.startswith("input"):  # on write too: a record changed after reading is checked when rebuilt
        with pytest.raises(ManifestError, match=match):
            InputSpec(**{**vars(good.input), **{k: v for k, v in data["input"].items() if k.startswith("frame")}})
