"""``edgeseg deploy deepstream``: the float-input graph, nvinfer's key file, labels, INT8 table and refusals.

Most tests use a tiny bundle built here from a hand-made deploy graph (the bundle's contract without a torch
export: uint8 NHWC image → Cast → Transpose → per-channel normalisation → convolutions → ArgMax → uint8 labels),
so the whole command runs in about a second; one test deploys a real exported model.
"""

import configparser
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import bundle_group
from hostile_harness import assert_refused, run
from onnx import TensorProto, helper, numpy_helper

from edgeseg.calibration.cache import read_cache, scale_to_hex, write_cache
from edgeseg.errors import EdgesegError
from edgeseg.export.deepstream_graph import (
    build_variant,
    compare_with_bundle,
    nvinfer_class_map,
    require_agreement,
    sample_frames,
)
from edgeseg.runtime.bundle import Bundle, tensor_specs
from edgeseg.runtime.manifest import CalibrationIdentity, CalibrationRecord, InputSpec, Manifest, ModelInfo
from edgeseg.runtime.trt_features import cache_version_number

SIZE = (16, 24)
CLASSES = ["road", "sky", "car", "person"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CONFIG = "config_infer_primary_tiny.txt"
ONNX_FILE = "tiny_nvinfer.onnx"

# Gst-nvinfer's configuration keys ([property] group) and how GLib's key-file parser reads them, from the
# plugin's documentation: https://docs.nvidia.com/metropolis/deepstream/dev-guide/text/DS_plugin_gst-nvinfer.html
# ("Gst-nvinfer Configuration File Specifications": the Property table). Value sets are those the page lists
# (network-mode 0 FP32, 1 INT8, 2 FP16; network-type 0 detector, 1 classifier, 2 segmentation, 3 instance
# segmentation, 100 other; process-mode 1 primary, 2 secondary; model-color-format 0 RGB, 1 BGR, 2 GRAY;
# segmentation-output-order 0 NCHW, 1 NHWC; scaling-filter 0-6, NvBufSurfTransform_Inter).
NVINFER_KEYS = {
    "gpu-id": "uint", "gie-unique-id": "uint", "batch-size": "uint", "num-detected-classes": "uint",
    "use-dla-core": "uint",
    "network-mode": {0, 1, 2}, "network-type": {0, 1, 2, 3, 100}, "process-mode": {1, 2},
    "model-color-format": {0, 1, 2}, "segmentation-output-order": {0, 1}, "scaling-filter": set(range(7)),
    "net-scale-factor": "float", "segmentation-threshold": "float", "offsets": "float-list",
    "infer-dims": "uint-list", "output-blob-names": "string-list",
    "maintain-aspect-ratio": "bool", "symmetric-padding": "bool", "enable-dla": "bool",
    "onnx-file": "path", "labelfile-path": "path", "int8-calib-file": "path", "model-engine-file": "engine-path",
}
REQUIRED = {"gpu-id", "onnx-file", "model-engine-file", "labelfile-path", "batch-size", "network-mode",
            "network-type", "process-mode", "gie-unique-id", "infer-dims", "model-color-format", "net-scale-factor",
            "maintain-aspect-ratio", "num-detected-classes", "output-blob-names", "segmentation-output-order",
            "segmentation-threshold"}
_INT, _FLOAT = re.compile(r"-?\d+"), re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def strict_key_file(path: Path) -> configparser.ConfigParser:
    """A GLib key file as GLib reads it: case-sensitive keys, no interpolation, no duplicate keys or groups,
    comments only on lines of their own (an inline ``# note`` would stay in the value and fail the type check)."""
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",), comment_prefixes=("#",),
                                       inline_comment_prefixes=None, empty_lines_in_values=False)
    parser.optionxform = str
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def _items(value: str) -> list[str]:
    return value[:-1].split(";") if value.endswith(";") else value.split(";")


def check_value(kind, value: str, folder: Path) -> None:
    """``value`` reads as ``kind`` of :data:`NVINFER_KEYS`; a path is relative and names a file in ``folder``."""
    if isinstance(kind, set):
        assert _INT.fullmatch(value) and int(value) in kind, value
    elif kind == "uint":
        assert _INT.fullmatch(value) and int(value) >= 0, value
    elif kind == "float":
        assert _FLOAT.fullmatch(value), value
    elif kind == "bool":
        assert value in ("0", "1"), value
    elif kind == "uint-list":
        assert all(_INT.fullmatch(v) and int(v) > 0 for v in _items(value)), value
    elif kind == "float-list":
        assert all(_FLOAT.fullmatch(v) for v in _items(value)), value
    elif kind == "string-list":
        assert all(v.strip() for v in _items(value)), value
    else:  # a path nvinfer resolves against the config's folder
        assert not Path(value).is_absolute() and ".." not in Path(value).parts, value
        exists = (folder / value).is_file()
        assert exists if kind == "path" else not exists, value  # the engine is nvinfer's to write


def nvinfer_properties(folder: Path, config: str = CONFIG) -> dict[str, str]:
    """The ``[property]`` group of the written config, every key documented, typed and (paths) present."""
    parser = strict_key_file(folder / config)
    assert parser.sections() == ["property"]
    props = dict(parser["property"])
    assert set(props) <= set(NVINFER_KEYS), set(props) - set(NVINFER_KEYS)
    assert REQUIRED <= set(props), REQUIRED - set(props)
    for key, value in props.items():
        check_value(NVINFER_KEYS[key], value, folder)
    return props


# ---- a tiny bundle from a hand-made deploy graph ------------------------------------------------------------


def deploy_graph(batch=1, lowres=False, nhwc_norm=False, seed=0):
    """image (uint8 N×H×W×3) → Cast → Transpose → Sub/Mul (per-channel mean, std) → Conv → Relu → Conv (logits)
    → ArgMax → Cast → Cast (uint8 labels); ``lowres``: the convolutions halve the size, the ArgMax runs there
    and two Gathers bring the labels back (``--argmax-at logits``); ``nhwc_norm``: normalised before the
    Transpose, so the Cast feeds the Sub."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    f32 = TensorProto.FLOAT
    shape = (1, 1, 1, 3) if nhwc_norm else (1, 3, 1, 1)
    inits = [numpy_helper.from_array((np.array(MEAN, np.float32) * 255).reshape(shape), "mean"),
             numpy_helper.from_array((1 / (np.array(STD, np.float32) * 255)).reshape(shape), "inv_std"),
             numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.5, (len(CLASSES), 8, 1, 1)).astype(np.float32), "w2")]
    if nhwc_norm:
        nodes = [helper.make_node("Cast", ["image"], ["pixels"], to=f32),
                 helper.make_node("Sub", ["pixels", "mean"], ["sub"]),
                 helper.make_node("Mul", ["sub", "inv_std"], ["mul_nhwc"]),
                 helper.make_node("Transpose", ["mul_nhwc"], ["mul"], perm=[0, 3, 1, 2])]
    else:
        nodes = [helper.make_node("Cast", ["image"], ["pixels"], to=f32),
                 helper.make_node("Transpose", ["pixels"], ["permute"], perm=[0, 3, 1, 2]),
                 helper.make_node("Sub", ["permute", "mean"], ["sub"]),
                 helper.make_node("Mul", ["sub", "inv_std"], ["mul"])]
    nodes += [helper.make_node("Conv", ["mul", "w1"], ["conv1"], pads=[1, 1, 1, 1],
                              strides=[2, 2] if lowres else [1, 1]),
              helper.make_node("Relu", ["conv1"], ["relu1"]),
              helper.make_node("Conv", ["relu1", "w2"], ["logits"]),
              helper.make_node("ArgMax", ["logits"], ["argmax"], axis=1, keepdims=0),
              helper.make_node("Cast", ["argmax"], ["labels_f"], to=f32)]
    if lowres:
        inits += [numpy_helper.from_array(np.arange(h) // 2, "rows"),
                  numpy_helper.from_array(np.arange(w) // 2, "cols")]
        nodes += [helper.make_node("Gather", ["labels_f", "rows"], ["up_rows"], axis=1),
                  helper.make_node("Gather", ["up_rows", "cols"], ["up"], axis=2),
                  helper.make_node("Cast", ["up"], ["labels"], to=TensorProto.UINT8)]
    else:
        nodes.append(helper.make_node("Cast", ["labels_f"], ["labels"], to=TensorProto.UINT8))
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, h, w, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [batch, h, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def make_bundle(root: Path, *, batch=1, lowres=False, nhwc_norm=False, resize="stretch", int8=False,
                algorithm="EntropyCalibration2") -> Path:
    """A bundle folder around :func:`deploy_graph` (manifest, sha256); ``int8``: with a calib.cache the manifest
    vouches for, holding a scale for every tensor the convolutions read or write and one for the Cast's output."""
    root.mkdir(parents=True)
    onnx.save(deploy_graph(batch, lowres, nhwc_norm), str(root / "model.onnx"))
    batch_dim = "batch" if batch == "batch" else batch
    inputs, outputs = tensor_specs(("image",), ("labels",), batch_dim, SIZE, len(CLASSES),
                                   argmax_at="logits" if lowres else "output")
    manifest = Manifest(model=ModelInfo("tiny", list(CLASSES), mean=list(MEAN), std=list(STD)),
                        input=InputSpec(SIZE, batch_dim, resize), inputs=inputs, outputs=outputs)
    bundle = Bundle(root, manifest)
    entry = bundle.add_file("model.onnx", "onnx", precision="fp32")
    if int8:
        write_cache(root / "calib.cache", INT8_AMAX, version="100300", algorithm=algorithm)
        bundle.add_file("calib.cache", "calibration-cache", precision="int8")
        manifest.calibration = CalibrationRecord("percentile", 8, CalibrationIdentity(
            onnx_sha256=entry.sha256, calibration_sha256="0" * 64, input_size=list(SIZE), trt_version="100300"))
    bundle.save()
    return root


INT8_AMAX = {"pixels": 255.0, "mul": 2.6, "conv1": 7.1, "relu1": 7.1, "logits": 12.5}  # "pixels": the Cast's output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("ds") / "bundle", int8=True)


def deploy(capsys, bundle: Path, out: Path, *extra: str):
    """Deploy at fp16 (what a Jetson runs) unless ``extra`` names a precision."""
    precision = () if "--precision" in extra else ("--precision", "fp16")
    outcome = run(capsys, "deploy", "deepstream", str(bundle), "--out", str(out), *precision, *extra)
    assert outcome.code == 0, outcome.stderr
    return outcome


def _bundle_labels(bundle: Path, frames: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["labels"], {"image": f[None]})[0] for f in frames])


def _variant_class_map(model_path: Path, frames: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name, out.type) == ("input", "tensor(float)", "probs", "tensor(float)")
    probs = np.concatenate([session.run(["probs"], {"input": f[None].transpose(0, 3, 1, 2).astype(np.float32)})[0]
                            for f in frames])
    return nvinfer_class_map(probs)


# ---- what is written -----------------------------------------------------------------------------------------


def test_config_is_a_strict_key_file_of_documented_typed_keys(tiny, tmp_path, capsys):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out)
    props = nvinfer_properties(out)
    assert props["onnx-file"] == ONNX_FILE and props["labelfile-path"] == "labels.txt"
    assert props["model-engine-file"] == f"{ONNX_FILE}_b1_gpu0_fp16.engine"  # nvinfer's own naming
    assert (props["network-mode"], props["network-type"], props["process-mode"]) == ("2", "2", "1")
    assert props["infer-dims"] == f"3;{SIZE[0]};{SIZE[1]}" and props["batch-size"] == "1"
    assert props["num-detected-classes"] == str(len(CLASSES)) and props["output-blob-names"] == "probs"
    assert float(props["net-scale-factor"]) == 1.0 and "offsets" not in props and props["model-color-format"] == "0"
    assert props["segmentation-output-order"] == "0" and float(props["segmentation-threshold"]) == 0.0
    assert props["maintain-aspect-ratio"] == "0" and "symmetric-padding" not in props
    assert not {"int8-calib-file", "enable-dla", "use-dla-core"} & set(props)
    graph = onnx.load(str(out / ONNX_FILE)).graph
    assert [o.name for o in graph.output] == [props["output-blob-names"]]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [int(v) for v in props["infer-dims"].split(";")] and dims[0] == int(props["batch-size"])


def test_labels_file_has_one_class_per_line_in_order(tiny, tmp_path, capsys):
    deploy(capsys, tiny, tmp_path / "ds")
    assert (tmp_path / "ds" / "labels.txt").read_text().splitlines() == CLASSES


def test_app_config_and_gst_line_run_the_infer_config(tiny, tmp_path, capsys):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out)
    app = strict_key_file(out / "deepstream_app_config.txt")
    assert {"application", "source0", "streammux", "primary-gie", "segvisual", "sink0"} <= set(app.sections())
    assert app["source0"]["type"] == "5" and app["primary-gie"]["config-file"] == CONFIG  # 5: CSI camera
    assert (out / app["primary-gie"]["config-file"]).is_file()
    assert app["streammux"]["batch-size"] == app["primary-gie"]["batch-size"] == "1"
    line = (out / "gst-launch.txt").read_text().strip()
    elements = [part.split()[0] for part in line.removeprefix("gst-launch-1.0 ").split(" ! ")
                if not part.startswith("'")]
    assert elements == ["nvarguscamerasrc", "nvvideoconvert", "m.sink_0", "nvinfer", "nvsegvisual", "nvvideoconvert",
                        "nv3dsink"]
    assert f"nvinfer config-file-path={CONFIG} " in line and "nvstreammux name=m batch-size=1 " in line


def test_stdout_is_the_table_or_json_of_what_was_written(tiny, tmp_path, capsys):
    outcome = deploy(capsys, tiny, tmp_path / "a")
    assert CONFIG in outcome.stdout and ONNX_FILE in outcome.stdout and "DeepStream folder written" in outcome.stderr
    outcome = deploy(capsys, tiny, tmp_path / "b", "--json")
    document = json.loads(outcome.stdout)
    assert sorted(document["files"]) == sorted(p.name for p in (tmp_path / "b").iterdir()
                                                if p.name != "edgeseg-deepstream.json")
    assert document["verification"]["label_agreement"] == 1.0


def test_help_shows_defaults_and_an_example(capsys):
    outcome = run(capsys, "deploy", "deepstream", "--help")
    assert outcome.code == 0 and "example:" in outcome.stdout
    assert "(default: fp32" in outcome.stdout and "(default: 0.999)" in outcome.stdout


# ---- the graph -----------------------------------------------------------------------------------------------


def test_variant_gives_the_bundle_labels_in_onnxruntime(tiny, tmp_path, capsys):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out)
    frames = sample_frames(6, SIZE, seed=7)
    labels = _bundle_labels(tiny, frames)
    assert len(np.unique(labels)) > 1
    assert np.array_equal(_variant_class_map(out / ONNX_FILE, frames), labels)
    nodes = onnx.load(str(out / ONNX_FILE)).graph.node
    assert [n.op_type for n in nodes[:2]] == ["Sub", "Mul"] and nodes[-1].op_type == "Softmax"


def test_a_graph_that_normalises_before_its_transpose_gets_one_back(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "b", nhwc_norm=True)
    deploy(capsys, bundle, tmp_path / "ds")
    frames = sample_frames(4, SIZE, seed=11)
    assert np.array_equal(_variant_class_map(tmp_path / "ds" / ONNX_FILE, frames), _bundle_labels(bundle, frames))
    first = onnx.load(str(tmp_path / "ds" / ONNX_FILE)).graph.node[0]
    assert (first.op_type, list(first.input), list(first.output)) == ("Transpose", ["input"], ["pixels"])


@bundle_group("lednet")
def test_a_real_exported_model_deploys_and_agrees(registry_bundle, tmp_path, capsys):
    bundle = registry_bundle("lednet").bundle
    out = tmp_path / "ds"
    deploy(capsys, bundle.root, out)
    frames = sample_frames(4, bundle.input_size, seed=3)
    assert np.array_equal(_variant_class_map(out / "lednet_nvinfer.onnx", frames), _bundle_labels(bundle.root, frames))
    assert nvinfer_properties(out, "config_infer_primary_lednet.txt")["num-detected-classes"] == "5"


def test_dynamic_batch_and_argmax_at_logits(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "b", batch="batch", lowres=True)
    out = tmp_path / "ds"
    outcome = deploy(capsys, bundle, out, "--batch-size", "2", "--json")
    document = json.loads(outcome.stdout)
    assert document["verification"]["batch_sizes"] == [1, 2]
    assert document["output"]["shape"] == ["batch", len(CLASSES), SIZE[0] // 2, SIZE[1] // 2]
    props = nvinfer_properties(out)
    assert props["batch-size"] == "2" and props["model-engine-file"] == f"{ONNX_FILE}_b2_gpu0_fp16.engine"
    frames = sample_frames(4, SIZE, seed=5)
    coarse = _variant_class_map(out / ONNX_FILE, frames)
    upsampled = coarse[:, np.arange(SIZE[0]) // 2][:, :, np.arange(SIZE[1]) // 2]  # the bundle's nearest Gathers
    assert np.array_equal(upsampled, _bundle_labels(bundle, frames))


def test_a_variant_that_disagrees_is_refused(tiny):
    model = onnx.load(str(tiny / "model.onnx"))
    variant = build_variant(model)
    frames = sample_frames(4, SIZE)
    require_agreement(compare_with_bundle(variant, model, frames), 0.999)
    mean = next(i for i in variant.model.graph.initializer if i.name == "mean")
    mean.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(mean)[:, ::-1].copy(), "mean"))  # BGR means
    result = compare_with_bundle(variant, model, frames)
    assert result["label_agreement"] < 0.999
    with pytest.raises(EdgesegError, match="agrees with the bundle's graph on only"):
        require_agreement(result, 0.999)


def test_a_disagreeing_variant_writes_nothing(tiny, tmp_path, capsys, monkeypatch):
    from edgeseg.export import deepstream_graph

    real = deepstream_graph.build_variant

    def swapped_channels(model):  # the mistake a hand-written config makes: BGR frames into an RGB model
        variant = real(model)
        graph = variant.model.graph
        for node in graph.node:
            node.input[:] = ["flipped" if name == "input" else name for name in node.input]
        graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), n)
                                 for n, v in (("s", [2]), ("e", [-4]), ("a", [1]), ("st", [-1])))
        graph.node.insert(0, helper.make_node("Slice", ["input", "s", "e", "a", "st"], ["flipped"]))
        return variant

    monkeypatch.setattr(deepstream_graph, "build_variant", swapped_channels)
    assert_refused(capsys, tmp_path, "deploy", "deepstream", str(tiny), "--out", str(tmp_path / "ds"),
                   match="agrees with the bundle's graph on only")
    assert not (tmp_path / "ds").exists()


# ---- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("core", ["0", "1"])
def test_dla_sets_enable_dla_and_the_core(tiny, tmp_path, capsys, core):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out, "--dla", core)
    props = nvinfer_properties(out)
    assert (props["enable-dla"], props["use-dla-core"]) == ("1", core)
    assert props["model-engine-file"] == f"{ONNX_FILE}_b1_dla{core}_fp16.engine"


@pytest.mark.parametrize("resize", ["letterbox", "crop"])
def test_resize_mode_maps_to_maintain_aspect_ratio(tmp_path, capsys, resize):
    bundle = make_bundle(tmp_path / "b", resize=resize)
    outcome = deploy(capsys, bundle, tmp_path / "ds")
    props = nvinfer_properties(tmp_path / "ds")
    text = (tmp_path / "ds" / CONFIG).read_text()
    if resize == "letterbox":  # scale to fit, centred: nvinfer's symmetric padding
        assert (props["maintain-aspect-ratio"], props["symmetric-padding"]) == ("1", "1")
        assert "cannot express" not in text + outcome.stderr
    else:  # nvinfer has no centre crop: said in the file and on stderr
        assert props["maintain-aspect-ratio"] == "0" and "symmetric-padding" not in props
        assert "# edgeseg fits frames by 'crop'" in text and "cannot express" in outcome.stderr


def test_int8_carries_the_bundle_scales_for_the_tensors_the_graph_keeps(tiny, tmp_path, capsys):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out, "--precision", "int8", "--trt-version", "10.13")
    props = nvinfer_properties(out)
    assert props["network-mode"] == "1" and props["int8-calib-file"] == "int8_calib.cache"
    assert props["model-engine-file"] == f"{ONNX_FILE}_b1_gpu0_int8.engine"
    version, algorithm, scales = read_cache(out / "int8_calib.cache")
    assert (version, algorithm) == (cache_version_number("10.13"), "EntropyCalibration2")  # TensorRT's header
    _, _, source = read_cache(tiny / "calib.cache")
    kept = {name for name in source if name != "pixels"}  # the uint8 image's Cast is not in the graph any more
    assert set(scales) == kept | {"input"}
    assert all(scale_to_hex(scales[n]) == scale_to_hex(source[n]) for n in kept)  # bit for bit
    assert scale_to_hex(scales["input"]) == scale_to_hex(255.0 / 127.0)  # the float input's range, 0-255
    names = {o for n in onnx.load(str(out / ONNX_FILE)).graph.node for o in n.output} | {"input"}
    assert set(scales) <= names


# ---- refusals ------------------------------------------------------------------------------------------------


def test_refusals_are_one_line_and_write_nothing(tiny, tmp_path, capsys):
    plain = make_bundle(tmp_path / "plain")
    minmax = make_bundle(tmp_path / "minmax", int8=True, algorithm="MinMaxCalibration")
    stale = make_bundle(tmp_path / "stale", int8=True)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["calibration"]["identity"]["input_size"] = [SIZE[0], 2 * SIZE[1]]
    (stale / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "not_a_bundle").mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    out = str(tmp_path / "ds")
    cases = [
        ((str(tmp_path / "not_a_bundle"), "--out", out), "not a bundle folder"),
        ((str(tiny), "--out", str(foreign)), "refusing to replace"),
        ((str(plain), "--out", out, "--precision", "int8"), "no TensorRT INT8 calibration cache"),
        ((str(stale), "--out", out, "--precision", "int8"), "another model or input size"),
        ((str(minmax), "--out", out, "--precision", "int8"), "not a TensorRT EntropyCalibration2 cache"),
        ((str(tiny), "--out", out, "--dla", "0", "--precision", "fp32"), "DLA runs fp16 or int8"),
        ((str(tiny), "--out", out, "--batch-size", "2"), "static batch of 1"),
        ((str(tiny), "--out", str(tiny / "ds")), "would write over the input"),
        ((str(tiny), "--out", out, "--precision", "int8", "--trt-version", "11.0"), "no INT8 calibrator"),
    ]
    for args, match in cases:
        assert_refused(capsys, tmp_path, "deploy", "deepstream", *args, match=match)
    for core in ("2", "-1", "x"):  # argparse's refusal, named by the nested command (the harness knows one word)
        outcome = run(capsys, "deploy", "deepstream", str(tiny), "--out", out, "--dla", core)
        assert outcome.code == 1 and len(outcome.lines) == 1, outcome.stderr
        assert outcome.lines[0].startswith("edgeseg deploy deepstream: error: argument --dla: expected a DLA core")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("name", ["a;b", "", "two\nlines"])
def test_class_names_nvinfer_would_misread_are_refused(name):
    from edgeseg.export.deepstream_config import labels_text

    with pytest.raises(EdgesegError, match="label file cannot hold"):
        labels_text(["road", name])


def test_frame_size_and_rgbd_bundles_are_refused(tmp_path, capsys):
    frame = make_bundle(tmp_path / "frame")
    manifest = json.loads((frame / "manifest.json").read_text())
    manifest["input"]["frame"] = [32, 48]
    manifest["inputs"][0]["shape"] = [1, 32, 48, 3]
    (frame / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(capsys, tmp_path, "deploy", "deepstream", str(frame), "--out", str(tmp_path / "ds"),
                   match="without --frame-size")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")  # the output folder is refused before any other check
    assert_refused(capsys, tmp_path, "deploy", "deepstream", str(frame), "--out", str(tmp_path / "foreign"),
                   match="refusing to replace")
    rgbd = make_bundle(tmp_path / "rgbd")
    manifest = json.loads((rgbd / "manifest.json").read_text())
    manifest["inputs"].append({"name": "depth", "dtype": "float32", "shape": [1, *SIZE], "layout": "NHW"})
    (rgbd / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(capsys, tmp_path, "deploy", "deepstream", str(rgbd), "--out", str(tmp_path / "ds"),
                   match="RGB-D")


def test_a_folder_it_wrote_is_replaced_with_the_engine_nvinfer_built(tiny, tmp_path, capsys):
    out = tmp_path / "ds"
    deploy(capsys, tiny, out)
    engine = out / f"{ONNX_FILE}_b1_gpu0_fp16.engine"
    engine.write_bytes(b"built by nvinfer on the Jetson")
    deploy(capsys, tiny, out, "--dla", "0")
    assert not engine.exists() and nvinfer_properties(out)["use-dla-core"] == "0"
    (out / "mine.txt").write_text("not edgeseg's")
    assert_refused(capsys, tmp_path, "deploy", "deepstream", str(tiny), "--out", str(out), match="mine.txt")


@pytest.mark.heavy
def test_a_real_calibration_cache_covers_every_convolution_of_the_graph(tmp_path, capsys):
    """A bundle calibrated by edgeseg (trained LEDNet, synthetic images): every tensor a convolution reads or
    writes in the DeepStream graph has the bundle's scale, and nothing is dropped but what the graph lost."""
    from edgeseg.calibration.pipeline import CalibrationOptions
    from edgeseg.export.pipeline import ExportOptions
    from edgeseg.workflow import export_with_variants

    checkpoint = Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints" / "lednet.pt"
    bundle = tmp_path / "b"
    export_with_variants(bundle, checkpoint=str(checkpoint), options=ExportOptions(input_size=(64, 128)),
                         calibration=CalibrationOptions(calib_data="synthetic:4", calib_size=4, eval_images=None,
                                                        fp16=False, max_miou_drop=100.0))
    outcome = deploy(capsys, bundle, tmp_path / "ds", "--precision", "int8", "--json")
    assert json.loads(outcome.stdout)["calibration"]["dropped"] == []
    _, _, scales = read_cache(tmp_path / "ds" / "int8_calib.cache")
    _, _, source = read_cache(bundle / "calib.cache")
    convs = [n for n in onnx.load(str(tmp_path / "ds" / "lednet_nvinfer.onnx")).graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[0] in scales and n.output[0] in scales for n in convs)
    assert all(scale_to_hex(scales[n]) == scale_to_hex(source[n]) for n in source)
