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

    assert tuple(backends.BACKENDS) == BENCH_BACKENDS == ("onnxruntime", "openvino", "tensorrt", "torch")
    assert backends.BACKEND_CHOICES == ("auto", *backends.BACKENDS)
    assert [backends.backends_of_kind(k) for k in ("onnx", "engine", "checkpoint", "report")] == \
        [("onnxruntime", "openvino"), ("tensorrt",), ("torch",), ()]
    assert backends.backends_of_suffix(".plan") == ("tensorrt",) and backends.backends_of_suffix(".txt") == ()
    assert backends.backends_of_suffix(".onnx") == ("onnxruntime", "openvino")
    with pytest.raises(EdgesegError, match="choose auto, onnxruntime, openvino"):
        backends.backend("tflite")


@pytest.mark.parametrize("machine, providers, openvino, expected", [
    ("x86_64", "cpu", None, "openvino"),
    ("AMD64", "cpu", None, "openvino"),
    ("x86_64", "cpu", "not installed", "onnxruntime"),
    ("aarch64", "cpu", None, "onnxruntime"),  # not measured there; a Jetson runs TensorRT
    ("arm64", "cpu", None, "onnxruntime"),
    ("x86_64", "cuda", None, "onnxruntime"),  # a GPU execution provider is ONNX Runtime's
])
def test_auto_prefers_openvino_on_x86_cpus_only(machine, providers, openvino, expected):
    missing = {"openvino": openvino}.get
    assert backends.auto_onnx_backend(providers, machine=machine, missing=missing) == expected


def test_load_runner_takes_the_auto_rule_for_onnx_files(tmp_path, monkeypatch):
    """``auto`` on an ONNX file (lone or in a bundle) and ``--crf`` runs go through the one rule."""
    from edgeseg.runtime import load

    root = make_threshold_bundle(tmp_path / "b")
    monkeypatch.setattr(load, "auto_onnx_backend", lambda providers="cpu": "onnxruntime")
    assert load.load_runner(root / "model.onnx").backend == "onnxruntime"
    if backends.backend_missing("openvino") is None:
        monkeypatch.setattr(load, "auto_onnx_backend", lambda providers="cpu": "openvino")
        assert load.load_runner(root / "model.onnx").backend == "openvino"
        assert load.load_runner(root, precision="int8").backend == "openvino"


def test_openvino_refuses_onnxruntime_providers_and_a_missing_install(tmp_path, monkeypatch):
    from edgeseg.runtime import load

    root = make_threshold_bundle(tmp_path / "b")
    with pytest.raises(EdgesegError, match="--providers cuda is for ONNX Runtime"):
        load.load_runner(root, "openvino", providers="cuda")
    monkeypatch.setattr(load, "backend_missing", lambda name: "openvino is not installed (pip install x)")
    with pytest.raises(EdgesegError, match="backend openvino cannot run here: openvino is not installed"):
        load.load_runner(root / "model.onnx", "openvino")


def test_an_openvino_that_fails_to_import_is_missing(monkeypatch):
    """A wheel built for a newer glibc installs but fails to load: auto must then stay on ONNX Runtime."""
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())

    def broken_import(name):
        raise ImportError("libopenvino.so: version `GLIBC_2.35' not found")

    monkeypatch.setattr(backends.importlib, "import_module", broken_import)
    assert "GLIBC" in backends.backend_missing("openvino")
    assert backends.auto_onnx_backend(machine="x86_64") == "onnxruntime"


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
