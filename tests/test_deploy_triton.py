"""``edgeseg deploy triton``: the model repository read back with Triton's own protobuf schema (tritonclient's
``model_config_pb2``) and checked against the ONNX file it ships; the plan route on a faked engine record (no
TensorRT here: nothing claims the plan runs); and the refusals."""

import json
import re
import subprocess
import sys

import onnx
import pytest
from bench_fixtures import CLASSES, H, W, make_threshold_bundle, threshold_onnx
from conftest import bundle_group
from google.protobuf import text_format  # installed with tritonclient[grpc] (the dev extra)
from hostile_harness import run, snapshot
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as pb2  # Triton's own model configuration schema

from edgeseg.runtime.bundle import open_bundle, sha256_file
from edgeseg.runtime.manifest import EngineRecord


def _config(folder):
    return text_format.Parse((folder / "config.pbtxt").read_text(), pb2.ModelConfig())


def _onnx_io(path):
    """name -> (Triton data type, dims with -1 where symbolic) of the ONNX graph's inputs and outputs."""
    graph = onnx.load(str(path)).graph
    types = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32", "int64": "TYPE_INT64"}

    def describe(values):
        return {v.name: (types[helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name],
                         [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim])
                for v in values}

    return describe(graph.input), describe(graph.output)


def _declared(config, tensors):
    batch = [-1] if config.max_batch_size > 0 else []
    return {t.name: (pb2.DataType.Name(t.data_type), batch + list(t.dims)) for t in tensors}


def _assert_matches_onnx(folder):
    """The config's inputs and outputs are exactly the ONNX file's: names, data types, dims."""
    config = _config(folder)
    inputs, outputs = _onnx_io(folder / "1" / "model.onnx")
    assert _declared(config, config.input) == inputs
    assert _declared(config, config.output) == outputs
    return config


def _params(config):
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accelerators] == ["tensorrt"]
    return dict(accelerators[0].parameters)


def _deploy(capsys, bundle, repo, *args):
    outcome = run(capsys, "deploy", "triton", bundle, "--out", repo, *args)
    assert outcome.code == 0, outcome.stderr
    return outcome


def test_a_dynamic_batch_bundle_gets_the_dynamic_batcher_and_its_onnx_tensors(tmp_path, capsys):
    bundle = make_threshold_bundle(tmp_path / "b", batch="batch")
    out = _deploy(capsys, bundle, tmp_path / "repo", "--precision", "int8", "--max-batch", "4", "--instances", "3",
                  "--json")
    result = json.loads(out.stdout)
    folder = tmp_path / "repo" / "tiny"
    assert result["folder"] == str(folder) and result["source"] == "model.int8.onnx"
    config = _assert_matches_onnx(folder)
    assert config.name == "tiny" and config.backend == "onnxruntime" and config.max_batch_size == 4
    assert list(config.input[0].dims) == [H, W, 3]  # the batch is Triton's, not a dim
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.count, pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(3, "KIND_GPU")]
    assert config.output[0].label_filename == "labels.txt"
    assert (folder / "labels.txt").read_text().splitlines() == CLASSES
    bundle_onnx = open_bundle(bundle).path("model.int8.onnx")
    assert sha256_file(folder / "1" / "model.onnx") == sha256_file(bundle_onnx)
    params = _params(config)
    assert params["precision_mode"] == "INT8" and params["trt_engine_cache_enable"] == "true"
    assert (params["trt_profile_min_shapes"], params["trt_profile_max_shapes"]) == (f"image:1x{H}x{W}x3",
                                                                                   f"image:4x{H}x{W}x3")
    readme = (folder / "README.txt").read_text()
    assert "tritonserver --model-repository" in readme and "v2/models/tiny/ready" in readme


def test_a_fixed_batch_bundle_gets_full_dims_and_no_batcher(tmp_path, capsys):
    bundle = make_threshold_bundle(tmp_path / "b")
    out = _deploy(capsys, bundle, tmp_path / "repo", "--kind", "cpu", "--name", "road")
    folder = tmp_path / "repo" / "road"
    config = _assert_matches_onnx(folder)
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, H, W, 3]
    assert pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_CPU"
    assert not config.HasField("optimization")  # the TensorRT accelerator is for GPU instances
    assert out.stdout.startswith("file ") and "Triton model 'road' written to" in out.stdout  # a table
    assert str(folder / "config.pbtxt") in out.stdout and str(folder / "1" / "model.onnx") in out.stdout


def test_the_config_text_is_the_library_function(tmp_path, capsys):
    from edgeseg.export.triton_config import TritonOptions, triton_model_config

    bundle = make_threshold_bundle(tmp_path / "b", batch="batch")
    _deploy(capsys, bundle, tmp_path / "repo", "--precision", "fp32", "--max-batch", "2")
    text = triton_model_config(open_bundle(bundle), TritonOptions(max_batch=2))
    assert text == (tmp_path / "repo" / "tiny" / "config.pbtxt").read_text()


@bundle_group("lednet")
def test_an_exported_bundle_with_logits(tmp_path, capsys, registry_bundle):
    bundle = registry_bundle("lednet").bundle  # labels and logits, 5 classes, fixed batch 1
    _deploy(capsys, bundle.root, tmp_path / "repo", "--precision", "fp16", "--trt-cache", "none",
            "--workspace", "512")
    folder = tmp_path / "repo" / "lednet"
    config = _assert_matches_onnx(folder)
    assert [(t.name, pb2.DataType.Name(t.data_type)) for t in config.output] == [("labels", "TYPE_UINT8"),
                                                                                ("logits", "TYPE_FP32")]
    assert {t.label_filename for t in config.output} == {"labels.txt"}
    assert len((folder / "labels.txt").read_text().splitlines()) == 5
    params = _params(config)
    assert params == {"precision_mode": "FP16", "max_workspace_size_bytes": str(512 * 2**20)}  # no cache asked
    assert sha256_file(folder / "1" / "model.onnx") == bundle.entry("model.onnx").sha256  # no fp16 variant


def test_fp16_without_a_variant_runs_the_fp32_graph_and_says_so(tmp_path, capsys):
    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    out = _deploy(capsys, bundle, tmp_path / "repo", "--precision", "fp16")
    assert "not measured by edgeseg" in out.stderr and "not measured" not in out.stdout
    config = _config(tmp_path / "repo" / "tiny")
    assert _params(config)["precision_mode"] == "FP16"
    assert "no gated fp16 variant" in (tmp_path / "repo" / "tiny" / "config.pbtxt").read_text()


def _with_engines(root, batch="batch"):
    """A threshold bundle with fp16 TensorRT engine records and stand-in files (never run: no TensorRT here):
    a DLA build (first by name) and a GPU build with a batch profile 1..4, tuned for 2."""
    make_threshold_bundle(root, {"fp32": 127.0, "fp16": 127.0}, batch=batch)
    bundle = open_bundle(root)
    profile = {"image": [[1, H, W, 3], [2, H, W, 3], [4, H, W, 3]]} if batch == "batch" else None
    for name, dla in (("model.fp16.dla0.engine", 0), ("model.fp16.engine", None)):
        (root / name).write_bytes(name.encode() * 8)
        bundle.add_file(name, "engine", precision="fp16", engine=EngineRecord(
            "10.3.0", "Orin", "8.7", dla_core=dla, profile=profile))
    bundle.save()
    return root


def test_a_plan_is_chosen_when_the_bundle_has_an_engine(tmp_path, capsys):
    bundle = _with_engines(tmp_path / "b")
    before = snapshot(bundle)
    out = _deploy(capsys, bundle, tmp_path / "repo", "--precision", "fp16", "--json")
    assert snapshot(bundle) == before
    folder = tmp_path / "repo" / "tiny"
    config = _config(folder)
    assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
    assert dict(config.cc_model_filenames) == {"8.7": "model.plan"}
    assert (folder / "1" / "model.plan").read_bytes() == (bundle / "model.fp16.engine").read_bytes()
    assert not (folder / "1" / "model.onnx").exists()
    assert config.max_batch_size == 4 and list(config.dynamic_batching.preferred_batch_size) == [2]  # the profile
    assert not config.HasField("optimization")
    assert json.loads(out.stdout)["engine"] == {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"}
    readme = (folder / "README.txt").read_text()
    assert "TensorRT 10.3.0" in readme and "compute 8.7" in readme
    _deploy(capsys, bundle, tmp_path / "repo", "--precision", "fp16", "--engine", "onnx")  # replaces its own
    config = _assert_matches_onnx(folder)
    assert config.backend == "onnxruntime" and not (folder / "1" / "model.plan").exists()
    assert json.loads((folder / "edgeseg-triton.json").read_text())["source"] == "model.fp16.onnx"


def test_a_fixed_batch_plan(tmp_path, capsys):
    bundle = _with_engines(tmp_path / "b", batch=1)
    _deploy(capsys, bundle, tmp_path / "repo", "--precision", "fp16", "--engine", "plan")
    config = _config(tmp_path / "repo" / "tiny")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 0
    assert list(config.input[0].dims) == [1, H, W, 3]


def _onnx_with_extra_input(path):
    threshold_onnx(path, 127.0)
    model = onnx.load(str(path))
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, H, W]))
    onnx.save(model, str(path))


def _swap_onnx(root, write):
    """Replace the bundle's model.onnx (manifest hash updated): the graph no longer matches the manifest."""
    write(root / "model.onnx")
    bundle = open_bundle(root)
    bundle.add_file("model.onnx", "onnx", precision="fp32")
    bundle.save()


def _refusals(tmp_path):
    plain = make_threshold_bundle(tmp_path / "plain")
    dynamic = make_threshold_bundle(tmp_path / "dynamic", batch="batch")
    engines = _with_engines(tmp_path / "engines")
    cpu_int8 = make_threshold_bundle(tmp_path / "cpu-int8")
    bundle = open_bundle(cpu_int8)
    bundle.files["model.int8.onnx"].target = "cpu"
    bundle.save()
    batch2 = make_threshold_bundle(tmp_path / "batch2")
    _swap_onnx(batch2, lambda p: threshold_onnx(p, 127.0, batch=2))
    extra = make_threshold_bundle(tmp_path / "extra")
    _swap_onnx(extra, _onnx_with_extra_input)
    changed = make_threshold_bundle(tmp_path / "changed")
    threshold_onnx(changed / "model.onnx", 100.0)  # a valid model, the same tensors: only its hash tells
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "not-a-bundle").mkdir()
    (tmp_path / "repo" / "tiny").mkdir(parents=True)
    (tmp_path / "repo" / "tiny" / "notes.txt").write_text("mine")
    return {"plain": plain, "dynamic": dynamic, "engines": engines, "cpu-int8": cpu_int8, "batch2": batch2,
            "extra": extra, "changed": changed, "not-a-bundle": tmp_path / "not-a-bundle"}


REFUSALS = {
    "not-a-bundle": ("not-a-bundle", ("--out", "out"), "not a bundle folder"),
    "plan-without-engine": ("plain", ("--out", "out", "--engine", "plan"), "no fp32 TensorRT engine.*edgeseg build"),
    "foreign-folder": ("plain", ("--out", "repo"), "not an edgeseg Triton model"),
    "max-batch-zero": ("dynamic", ("--out", "out", "--max-batch", "0"), "positive integer"),
    "max-batch-text": ("dynamic", ("--out", "out", "--max-batch", "many"), "positive integer"),
    "max-batch-beyond-profile": ("engines", ("--out", "out", "--precision", "fp16", "--max-batch", "8"),
                                 "profile ends at batch 4"),
    "preferred-beyond-max": ("dynamic", ("--out", "out", "--max-batch", "4", "--preferred-batch", "2", "8"),
                             "preferred batch sizes must be 1..4"),
    "no-int8-variant": ("engines", ("--out", "out", "--precision", "int8"), "no int8 ONNX model"),
    "cpu-int8-on-gpu": ("cpu-int8", ("--out", "out", "--precision", "int8"), "int8-target cpu"),
    "fp16-on-cpu": ("plain", ("--out", "out", "--precision", "fp16", "--kind", "cpu"), "fp16 runs on a GPU"),
    "plan-on-cpu": ("engines", ("--out", "out", "--precision", "fp16", "--engine", "plan", "--kind", "cpu"),
                    "drop --kind cpu"),
    "onnx-dims-differ": ("batch2", ("--out", "out"), "input 'image' is TYPE_UINT8 \\[2, 8, 12, 3\\]"),
    "onnx-input-undeclared": ("extra", ("--out", "out"), "takes input 'extra'"),
    "model-changed": ("changed", ("--out", "out"), "does not match its sha256"),
    "out-is-a-file": ("plain", ("--out", "file.txt"), "file.txt is not a folder"),
    "name-outside": ("plain", ("--out", "out", "--name", "../escaped"), "model name '../escaped'"),
    "out-inside-bundle": ("plain", ("--out", "plain/repo"), "would write over the input"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals(tmp_path, capsys, monkeypatch, case):
    bundles = _refusals(tmp_path)
    monkeypatch.chdir(tmp_path)
    bundle, args, match = REFUSALS[case]
    before = snapshot(tmp_path)
    outcome = run(capsys, "deploy", "triton", bundles[bundle], *args)
    assert outcome.code == 1 and outcome.stdout == "", outcome.stderr
    assert len(outcome.lines) == 1 and re.match(r"edgeseg( deploy triton)?: error: ", outcome.lines[0]), outcome.stderr
    assert re.search(match, outcome.lines[0]), outcome.lines[0]
    assert snapshot(tmp_path) == before


def test_a_rerun_replaces_its_own_folder_and_nothing_else(tmp_path, capsys):
    bundle = make_threshold_bundle(tmp_path / "b", batch="batch")
    repo = tmp_path / "repo"
    (repo / "other").mkdir(parents=True)
    (repo / "other" / "config.pbtxt").write_text('name: "other"\n')
    _deploy(capsys, bundle, repo, "--precision", "fp32")
    _deploy(capsys, bundle, repo, "--precision", "int8")
    assert _params(_config(repo / "tiny"))["precision_mode"] == "INT8"
    assert (repo / "other" / "config.pbtxt").read_text() == 'name: "other"\n'
    assert sorted(p.name for p in repo.iterdir()) == ["other", "tiny"]  # no staging leftovers
    (repo / "tiny" / "2").mkdir()  # a version someone added by hand
    before = snapshot(tmp_path)
    outcome = run(capsys, "deploy", "triton", bundle, "--out", repo)
    assert outcome.code == 1 and "'2', which edgeseg did not write" in outcome.stderr
    assert snapshot(tmp_path) == before


def test_help_shows_defaults_and_examples(capsys):
    outcome = run(capsys, "deploy", "triton", "--help")
    assert outcome.code == 0
    text = " ".join(outcome.stdout.split())
    assert "examples: edgeseg deploy triton bundle/ --out models/" in text
    assert "(default: fp32)" in text and "(default: auto)" in text and "(default: 1)" in text



def test_the_command_module_imports_neither_torch_nor_onnx():
    """``edgeseg deploy --help`` imports every target's module: those imports stay light."""
    code = ("import sys, edgeseg.export.triton, edgeseg.export.triton_config, edgeseg.export.triton_readme; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
