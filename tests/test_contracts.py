"""One owner per contract: the bundle (tensor names, tensor specs, the manifest checked on write as on read) and
the backends (one table that the loader, the bench planner and the CLI all read)."""

from __future__ import annotations

import json
import sys
import types

import pytest
from bench_fixtures import make_threshold_bundle

from edgeseg.errors import EdgesegError
from edgeseg.runtime import backends
from edgeseg.runtime.bundle import LABELS, LOGITS, Bundle, open_bundle, takes_depth, tensor_specs
from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo


def test_tensor_specs_describe_rgb_and_rgbd_graphs():
    inputs, outputs = tensor_specs(("image",), (LABELS, LOGITS), "batch", (32, 64), 5)
    assert [s.to_dict() for s in inputs] == [{"name": "image", "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                       "shape": ["batch", 32, 64, 3]}]
    assert [s.to_dict() for s in outputs] == [{"name": "labels", "dtype": "uint8", "shape": ["batch", 32, 64]},
                       {"name": "logits", "dtype": "float32", "shape": ["batch", 5, 32, 64]}]
    rgbd, _ = tensor_specs(("image", "depth"), (LABELS,), 1, (8, 8), 2)
    assert [s.name for s in rgbd] == ["image", "depth"] and rgbd[1].dtype == "float32"
    assert takes_depth(s.name for s in rgbd) and not takes_depth(["image"])


def test_a_manifest_is_checked_when_written_not_only_when_read(tmp_path):
    bundle = Bundle(tmp_path, Manifest(ModelInfo("tiny", ["a", "b"]), InputSpec((8, 8))))
    bundle.manifest.model.palette = [[0, 0, 0], ["x"]]  # a record changed after it was built
    with pytest.raises(EdgesegError, match="palette"):
        bundle.save()
    assert not (tmp_path / "manifest.json").exists()


def test_a_bundle_written_before_the_input_section_changed_still_opens(tmp_path):
    root = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["input"] = {"name": "image", "shape": ["batch", 8, 12, 3], "size": [8, 12]}  # format 1's layout
    manifest.pop("inputs")
    (root / "manifest.json").write_text(json.dumps(manifest))
    bundle = open_bundle(root)
    assert bundle.batch == "batch" and bundle.input_size == (8, 12) and bundle.resize_mode == "stretch"
    assert bundle.input_names == ("image",) and not bundle.takes_depth


def test_every_backend_has_one_entry_that_everything_reads():
    from edgeseg.runtime.bench_plan import BACKENDS as BENCH_BACKENDS

    assert tuple(backends.BACKENDS) == BENCH_BACKENDS == ("onnxruntime", "tensorrt", "torch")
    assert backends.BACKEND_CHOICES == ("auto", *backends.BACKENDS)
    assert [backends.backend_of_kind(k) for k in ("onnx", "engine", "checkpoint", "report")] == \
        ["onnxruntime", "tensorrt", "torch", None]
    assert backends.backend_of_suffix(".plan") == "tensorrt" and backends.backend_of_suffix(".txt") is None
    with pytest.raises(EdgesegError, match="choose auto, onnxruntime"):
        backends.backend("openvino")


def test_a_tensorrt_that_fails_to_import_leaves_auto_on_onnxruntime(monkeypatch):
    """A TensorRT whose CUDA libraries are missing raises OSError on import, not ImportError."""
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())

    def broken_import(name):
        raise OSError("libnvinfer.so.10: cannot open shared object file")

    monkeypatch.setattr(backends.importlib, "import_module", broken_import)
    assert "libnvinfer" in backends.backend_missing("tensorrt")


def test_tensorrt_stubs_alone_do_not_count_as_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())
    assert "stubs" in backends.backend_missing("tensorrt")
