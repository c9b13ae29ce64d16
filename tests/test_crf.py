"""ConvCRF and the dense CRF: parameters, quality on a constructed noisy case, the exported graphs against torch,
the chained and fused runtime forms, and the CLI."""

import json

import numpy as np
import pytest
import torch

from edgeseg.crf.convcrf import ConvCRF
from edgeseg.crf.params import CRFParams
from edgeseg.crf.quality import weak_logits
from edgeseg.errors import EdgesegError
from edgeseg.runtime.engine_plan import BuildOptions, plan_build, rebuild_command
from edgeseg.runtime.manifest import FileEntry

H, W = 64, 96


def two_regions(seed: int = 0):
    """An image with a dark and a bright region split by a slanted edge, its labels and blurred noisy logits."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W]
    labels = (xs > 0.4 * W + 0.3 * ys).astype(np.uint8)
    image = np.where(labels[..., None] == 1, 200, 40).astype(np.float32)
    image = np.clip(image + rng.normal(0, 4, (H, W, 3)), 0, 255).astype(np.uint8)
    logits = weak_logits(labels, 2, rng, downsample=8, confidence=2.0, noise=1.2)
    return image, labels, logits


def refine(logits, image, params=None, num_classes=2):
    crf = ConvCRF(num_classes, params).eval()
    with torch.no_grad():
        out = crf(torch.from_numpy(logits)[None], torch.from_numpy(image).permute(2, 0, 1)[None].float())
    return out[0].argmax(0).numpy()


def accuracy(pred, labels):
    return float((pred == labels).mean())


def test_params_are_validated_and_round_trip():
    p = CRFParams(iterations=3, filter_size=11)
    assert CRFParams.from_dict(p.to_dict() | {"unknown": 1}) == p
    for bad in (dict(filter_size=4), dict(blur=0), dict(bilateral_sigma_rgb=0), dict(compatibility="x"),
                dict(gaussian_weight=-1)):
        with pytest.raises(EdgesegError):
            CRFParams(**bad).validate()
    with pytest.raises(EdgesegError, match="blur 4 must divide"):
        CRFParams().check_size((30, 64))


def test_convcrf_repairs_a_noisy_blurred_prediction():
    for seed in range(3):
        image, labels, logits = two_regions(seed)
        before = accuracy(logits.argmax(0), labels)
        after = accuracy(refine(logits, image), labels)
        assert after > before + 0.01 and after > 0.97, (seed, before, after)


def test_convcrf_with_zero_weights_keeps_the_prediction():
    image, _, logits = two_regions()
    off = CRFParams(bilateral_weight=0.0, gaussian_weight=0.0)
    np.testing.assert_array_equal(refine(logits, image, off), logits.argmax(0))


def test_learned_compatibility_starts_as_potts():
    image, _, logits = two_regions()
    np.testing.assert_array_equal(refine(logits, image, CRFParams(compatibility="learned")), refine(logits, image))
    assert sum(p.numel() for p in ConvCRF(5, CRFParams(compatibility="learned")).parameters()) == 25
    assert not list(ConvCRF(5).parameters())


def test_colour_edges_steer_the_messages():
    """Without the appearance kernel the CRF cannot find the edge the colours show: it must do worse."""
    results = []
    for seed in range(3):
        image, labels, logits = two_regions(seed)
        with_colour = accuracy(refine(logits, image), labels)
        smooth_only = accuracy(refine(logits, image, CRFParams(bilateral_weight=0.0, gaussian_weight=7.0)), labels)
        results.append(with_colour - smooth_only)
    assert np.mean(results) > 0.005, results


def test_dense_crf_reference_repairs_the_same_case():
    pytest.importorskip("pydensecrf.densecrf")
    from edgeseg.runtime.dense_crf import dense_crf

    image, labels, logits = two_regions()
    assert accuracy(dense_crf(logits, image), labels) > accuracy(logits.argmax(0), labels) + 0.01
    with pytest.raises(EdgesegError, match="must be 64x96x3 uint8"):
        dense_crf(logits, image[:10])


def test_crf_engine_plan():
    files = {name: FileEntry(kind, 1, "0" * 64, precision="fp32") for name, kind in (("model.onnx", "onnx"),
                                                                                     ("crf.onnx", "crf"))}
    plan = plan_build(files, BuildOptions(precision="fp16", crf=True), trt_version="10.13.0", num_dla_cores=0,
                      gpu_compute_capability="8.9")
    assert (plan.onnx_file, plan.engine_file, plan.kind, plan.precision) == ("crf.onnx", "crf.fp32.engine",
                                                                             "crf-engine", "fp32")
    assert plan.strongly_typed
    with pytest.raises(EdgesegError, match="re-export it with edgeseg export --crf"):
        plan_build({"model.onnx": files["model.onnx"]}, BuildOptions(crf=True), trt_version="10.13.0",
                   num_dla_cores=0, gpu_compute_capability="8.9")
    with pytest.raises(EdgesegError, match="no --legacy-calibrator, --dla"):
        plan_build(files, BuildOptions(crf=True, dla_core=0), trt_version="10.13.0", num_dla_cores=2,
                   gpu_compute_capability="8.7")
    assert rebuild_command("out/b", FileEntry("crf-engine", 1, "0" * 64)) == "edgeseg build out/b --crf"


@pytest.fixture(scope="module")
def crf_bundle(tmp_path_factory):
    from edgeseg.export.pipeline import ExportOptions, export_bundle
    from edgeseg.models import create, save_checkpoint

    root = tmp_path_factory.mktemp("crf")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "l.pt", create("lednet", num_classes=3), name="lednet")
    export_bundle(root / "b", checkpoint=str(ckpt),
                  options=ExportOptions(input_size=(H, W), crf=CRFParams(iterations=3)))
    return root / "b"


def test_export_crf_writes_verified_standalone_and_fused_graphs(crf_bundle):
    import onnx

    from edgeseg.runtime.onnx_metadata import read_metadata

    m = json.loads((crf_bundle / "manifest.json").read_text())
    assert m["files"]["crf.onnx"]["kind"] == "crf" and m["files"]["model.crf.onnx"]["kind"] == "onnx-crf"
    assert [o["name"] for o in m["outputs"]] == ["labels", "logits"]
    assert m["crf"]["params"]["iterations"] == 3
    for name in ("crf.onnx", "model.crf.onnx"):
        assert m["crf"]["files"][name]["label_agreement"] == 1.0
        ops = {n.op_type for n in onnx.load(str(crf_bundle / name)).graph.node}
        assert not ops & {"Gather", "GatherElements", "ScatterND", "ScatterElements"}, ops
    graph = onnx.load(str(crf_bundle / "crf.onnx")).graph
    assert [i.name for i in graph.input] == ["logits", "image"] and [o.name for o in graph.output] == ["labels"]
    assert [read_metadata(crf_bundle / name).graph for name in ("crf.onnx", "model.crf.onnx")] == ["crf", "model+crf"]


def test_chained_and_fused_onnx_runtime_forms_agree(crf_bundle):
    from edgeseg.runtime.crf import ChainedRunner, load_crf_runner
    from edgeseg.runtime.load import load_runner

    image = np.ascontiguousarray(np.repeat(np.repeat(
        np.random.default_rng(1).integers(0, 256, (1, H // 16, W // 16, 3), dtype=np.uint8), 16, 1), 16, 2))
    with load_crf_runner(crf_bundle, "conv", "onnxruntime") as fused:
        assert not isinstance(fused, ChainedRunner)
        want = fused.infer({"image": image})["labels"]
    chained = ChainedRunner(load_runner(crf_bundle / "model.onnx", "onnxruntime"),
                            load_runner(crf_bundle / "crf.onnx", "onnxruntime"))
    with chained:
        got = chained.infer({"image": image})["labels"]
        assert set(chained.last_stages_ms) >= {"compute", "crf"}
    assert float((got == want).mean()) > 0.999
    with load_crf_runner(crf_bundle, "conv", "torch") as in_torch:
        assert float((in_torch.infer({"image": image})["labels"] == want).mean()) > 0.999
    with pytest.raises(EdgesegError, match="unknown CRF"):
        load_crf_runner(crf_bundle, "bilateral")


def test_run_cli_with_crf(crf_bundle, tmp_path, cli_here):
    cli = cli_here
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.full((H, W, 3), 60 * i, np.uint8)).save(frames / f"{i}.png")
    r = cli("run", str(crf_bundle), "--source", str(frames), "--sink", f"labels:{tmp_path / 'out'}", "--crf",
            "--backend", "onnxruntime", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames_out"] == 3 and summary["crf"] == "conv"
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_run_cli_crf_on_a_bundle_without_one_is_one_line(tmp_path, cli_here):
    cli = cli_here
    from bench_fixtures import make_threshold_bundle
    from PIL import Image

    bundle = make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    (tmp_path / "f").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "f" / "0.png")
    r = cli("run", str(bundle), "--source", str(tmp_path / "f"), "--crf", "--backend", "onnxruntime")
    assert r.returncode == 1 and "re-export it with edgeseg export --crf" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
