"""Export over the whole registry, bundles, lint, runners and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import bundle_group, registry_param, small_size

from edgeseg.errors import EdgesegError
from edgeseg.export.lint import lint_model, load_onnx
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.models import create, list_models, save_checkpoint
from edgeseg.runtime.backends import backend_missing
from edgeseg.runtime.bundle import open_bundle
from edgeseg.runtime.load import load_runner


@pytest.mark.parametrize("name", [registry_param(n) for n in list_models()])
def test_every_model_exports_simplifies_lints_and_verifies(registry_bundle, name):
    """Each model's shared bundle (tests/conftest.py: exported once, also checked by test_model_contract.py and,
    for ACNet, test_rgbd.py)."""
    bundle = registry_bundle(name).bundle
    m = bundle.manifest
    assert m.report("onnx")["simplify"]["method"] == "onnxsim"
    assert m.report("verification")["label_agreement"] >= 0.999
    assert m.report("verification")["relative_logit_diff"] < 1e-4
    assert m.report("lint")["errors"] == 0 and m.report("onnx")["opset"] >= 18
    proto = load_onnx(bundle.path("model.onnx"))  # lint_file's load and check, once (VGG ones are 0.5 GB)
    report = lint_model(proto, str(bundle.path("model.onnx")))
    assert not report.errors
    graph = proto.graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[0].name == "labels" and graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    h, w = small_size(name)
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, h, w, 3]


@bundle_group("lednet")
def test_bundle_manifest_hashes_and_runner_contract(tmp_path, registry_bundle):
    shutil.copytree(registry_bundle("lednet").bundle.root, tmp_path / "b")  # labels and logits, 5 classes
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model.pt", "verify.json"}
    assert manifest["input"] == {"size": [64, 128], "batch": 1, "resize": "stretch"}
    assert manifest["inputs"] == [{"name": "image", "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                                   "shape": [1, 64, 128, 3]}]
    assert [o["name"] for o in manifest["outputs"]] == ["labels", "logits"] and "engines" not in manifest
    assert len(manifest["model"]["classes"]) == 5 and manifest["versions"]["torch"]
    assert manifest["format_version"] == 2
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    results = {}
    for backend in ("onnxruntime", "torch"):
        with load_runner(tmp_path / "b", backend) as runner:
            assert [s.name for s in runner.inputs()] == ["image"]
            assert [s.name for s in runner.outputs()] == ["labels", "logits"]
            out = runner.infer({"image": image})
            assert runner.last_latency_ms > 0
            results[backend] = out
            with pytest.raises(EdgesegError, match="must be"):
                runner.infer({"image": image[:, :32]})
    assert results["onnxruntime"]["labels"].dtype == np.uint8
    assert np.mean(results["onnxruntime"]["labels"] == results["torch"]["labels"]) > 0.999
    np.testing.assert_allclose(results["onnxruntime"]["logits"], results["torch"]["logits"], atol=1e-4)
    # a tampered file is refused
    (tmp_path / "b" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(EdgesegError, match="sha256"):
        load_runner(tmp_path / "b")


@bundle_group("lednet")
@pytest.mark.openvino
def test_openvino_keeps_the_runner_contract_and_agrees_with_onnxruntime(registry_bundle):
    """The same model.onnx through OpenVINO: the same tensor specs, labels and logits as ONNX Runtime, input
    checks, its own timing, ``--threads`` as INFERENCE_NUM_THREADS and an fp32 file computed in f32 (not the
    bf16 the CPU plugin defaults to on a BF16-capable CPU)."""
    root = registry_bundle("lednet").bundle.root
    image = np.random.default_rng(1).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    with load_runner(root, "openvino", threads=1) as ov, load_runner(root, "onnxruntime", threads=1) as ort:
        assert ov.backend == "openvino" and ov.inputs() == ort.inputs() and ov.outputs() == ort.outputs()
        a, b = ov.infer({"image": image}), ort.infer({"image": image})
        assert ov.last_latency_ms > 0
        assert a["labels"].dtype == np.uint8 and np.mean(a["labels"] == b["labels"]) > 0.999
        np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4)
        with pytest.raises(EdgesegError, match="must be"):
            ov.infer({"image": image[:, :32]})
        assert ov.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert str(ov.compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
        assert ov.compute == "f32"


def test_dynamic_batch_verifies_two_batch_sizes(tmp_path):
    bundle = export_bundle(tmp_path / "d", model_name="lednet",  # channel shuffle: reshapes that carry the batch
                           options=ExportOptions(input_size=(64, 128), num_classes=3, dynamic_batch=True))
    verify = json.loads(bundle.path("verify.json").read_text())
    assert verify["batch_sizes"] == [1, 2]
    assert bundle.manifest.input.batch == "batch" == bundle.batch
    with load_runner(bundle.root) as runner:
        out = runner.infer({"image": np.zeros((3, 64, 128, 3), np.uint8)})
    assert out["labels"].shape == (3, 64, 128)
    if backend_missing("openvino") is None:  # the openvino-marked tests say why when it is not installed
        with load_runner(bundle.root, "openvino") as runner:
            assert runner.inputs()[0].shape == ("?", 64, 128, 3)
            for n in (1, 3):
                assert runner.infer({"image": np.zeros((n, 64, 128, 3), np.uint8)})["labels"].shape == (n, 64, 128)


def test_export_from_checkpoint_and_eval_backends_agree(tmp_path, cli_here):
    cli = cli_here
    # trained on the synthetic scenes: its labels follow the picture, so a frame fitted another way scores otherwise
    ckpt = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "lednet.pt"
    r = cli("export", "--checkpoint", str(ckpt), "--input-size", "96x256", "--resize", "letterbox",
            "--out", str(tmp_path / "b"), "--data", "synthetic", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["label_agreement"] >= 0.999
    scores, resolutions = {}, set()
    deploy = ["--input-size", "96x256", "--resize", "letterbox"]  # the checkpoint scored as its bundle is
    runs = [(ckpt, "auto", deploy), (tmp_path / "b", "onnxruntime", []), (tmp_path / "b", "torch", []),
            (tmp_path / "b" / "model.onnx", "auto", [])]
    if backend_missing("openvino") is None:  # the openvino-marked tests say why when it is not installed
        runs.append((tmp_path / "b", "openvino", []))
    for target, backend, extra in runs:
        r = cli("eval", str(target), "--data", "synthetic", "--max-images", "2", "--backend", backend, "--json",
                *extra)
        assert r.returncode == 0, r.stderr
        scores[(str(target), backend)] = json.loads(r.stdout)["miou"]
        resolutions.add(json.loads(r.stdout)["resolution"])
    values = list(scores.values())
    assert max(values) - min(values) < 1e-3, scores
    assert resolutions == {"96x256 deploy size (letterbox), labels mapped back to each image"}


@pytest.mark.parametrize("case", ["missing-checkpoint", "other-model", "bad-size", "unwritable", "bad-outputs"])
def test_export_bad_input_is_one_line_and_leaves_nothing(tmp_path, cli_here, case):
    cli = cli_here
    ckpt = save_checkpoint(tmp_path / "l.pt", create("lednet", num_classes=3), name="lednet")
    out = tmp_path / "bundle"
    args = {"missing-checkpoint": ["--checkpoint", str(tmp_path / "nope.pt")],
            "other-model": ["--checkpoint", str(ckpt), "--model", "bisenetv2"],
            "bad-size": ["--model", "bisenetv2", "--input-size", "100x200"],
            "unwritable": ["--model", "lednet", "--input-size", "64x64"],
            "bad-outputs": ["--model", "lednet", "--outputs", "labels,heatmap"]}[case]
    if case == "unwritable":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "bundle"
    r = cli("export", *args, "--out", str(out))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("edgeseg") and "Traceback" not in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_bad_size_message_suggests_a_fit(cli_here, tmp_path):
    r = cli_here("export", "--model", "bisenetv2", "--input-size", "100x200", "--out", str(tmp_path / "x"))
    assert "multiples of 32" in r.stderr and "try 96x192" in r.stderr


@bundle_group("lednet")
def test_corrupt_and_truncated_onnx(tmp_path, cli_here, registry_bundle):
    cli = cli_here
    data = registry_bundle("lednet").bundle.path("model.onnx").read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 10)
    for name in ("trunc.onnx", "junk.onnx"):
        for cmd in (["lint", str(tmp_path / name)], ["eval", str(tmp_path / name), "--max-images", "1"]):
            r = cli(*cmd)
            assert r.returncode == 1, (cmd, r.stderr)
            assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr


def _graph_with(nodes, inputs, outputs, initializers=()):
    g = onnx.helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 18)])


def test_lint_flags_what_tensorrt_rejects():
    f = onnx.TensorProto.FLOAT
    x = onnx.helper.make_tensor_value_info("x", f, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [1, 8, 8])
    z = onnx.helper.make_tensor_value_info("z", f, None)
    nodes = [
        onnx.helper.make_node("Resize", ["x", "", "sc"], ["r"], mode="cubic",
                              coordinate_transformation_mode="tf_crop_and_resize"),
        onnx.helper.make_node("Shape", ["x"], ["s"]),
        onnx.helper.make_node("Gather", ["s", "i"], ["g"], axis=0),
        onnx.helper.make_node("Concat", ["g", "g", "g", "g"], ["pads"], axis=0),
        onnx.helper.make_node("Pad", ["r", "pads"], ["p"]),
        onnx.helper.make_node("ArgMax", ["p"], ["a"], axis=1, keepdims=0),
        onnx.helper.make_node("Cast", ["a"], ["y"], to=onnx.TensorProto.UINT8),
        onnx.helper.make_node("Det", ["p"], ["z"]),
    ]
    inits = [onnx.helper.make_tensor("sc", f, [4], [1, 1, 2, 2]), onnx.helper.make_tensor("i", onnx.TensorProto.INT64,
                                                                                         [1], [2])]
    report = lint_model(_graph_with(nodes, [x], [y, z], inits))
    codes = {f.code for f in report.errors}
    assert {"resize-mode", "resize-coordinates", "computed-pad", "shape-subgraph", "argmax-to-uint8",
            "unsupported-op"} <= codes
    assert any(f.code == "shape-op" for f in report.warnings)


@bundle_group("lednet")
def test_lint_cli_exit_codes(tmp_path, cli, registry_bundle):
    """The installed command's exit codes (it starts fast: lint imports no torch)."""
    ok = cli("lint", str(registry_bundle("lednet").bundle.path("model.onnx")))
    assert ok.returncode == 0 and "0 errors" in ok.stdout
    f = onnx.TensorProto.FLOAT
    bad = _graph_with([onnx.helper.make_node("Det", ["x"], ["y"])],
                      [onnx.helper.make_tensor_value_info("x", f, [2, 2])],
                      [onnx.helper.make_tensor_value_info("y", f, [])])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    r = cli("lint", str(tmp_path / "bad.onnx"), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["errors"] == 1


def test_bundle_open_errors(tmp_path):
    with pytest.raises(EdgesegError, match="not a bundle"):
        open_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(EdgesegError, match="not valid JSON"):
        open_bundle(tmp_path)


def test_require_agreement_refuses_below_the_minimum():
    from edgeseg.export.verify import require_agreement

    require_agreement(0.9995, 0.999)
    with pytest.raises(EdgesegError, match=r"only 99\.800% of the labels of crf\.onnx \(minimum 99\.9%\)"):
        require_agreement(0.998, 0.999, "the labels of crf.onnx")


def test_a_graph_with_logits_alone_is_verified_by_their_argmax(cli_here, tmp_path):
    """--outputs logits (the one graph OpenVINO's Model API runs): verification compares the logits' ArgMax."""
    out = tmp_path / "b"
    r = cli_here("export", "--model", "lednet", "--num-classes", "4", "--input-size", "32x64", "--outputs", "logits",
                 "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    verify = json.loads((out / "verify.json").read_text())
    assert verify["label_agreement"] > 0.99
