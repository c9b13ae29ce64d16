"""Careless and hostile input to every command: one clear line, exit 1, and the file tree as it was.

Each case names what a user (or an attacker) hands edgeseg; ``assert_refused`` checks the exit code, the single
error line, the absence of a traceback or "internal error", and hashes the whole working folder before and
after. Bundles are the two-class threshold model of ``bench_fixtures`` (no torch, instant to make).
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from bench_fixtures import make_threshold_bundle, make_threshold_data, write_video
from hostile_harness import assert_refused, run
from onnx import TensorProto, helper
from PIL import Image

from edgeseg.models import create, save_checkpoint


@pytest.fixture
def work(tmp_path):
    """A working folder with a bundle ``b``, an image folder ``imgs``, a video ``clip.avi`` and a data set."""
    make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / f"f{i:03d}.png")
    write_video(tmp_path / "clip.avi", [25, 230, 25], fourcc="MJPG")
    make_threshold_data(tmp_path / "data", count=2)
    return tmp_path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "lednet.pt"
    save_checkpoint(path, create("lednet", num_classes=2), name="lednet")
    return path


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A 57-byte PNG that declares a side×side greyscale image (a decompression bomb): PIL refuses it on open."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))
    return path


def _spec(work: Path) -> str:
    return f"folder:{work / 'data' / 'images'},{work / 'data' / 'labels'}"


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


# -- export: what --out may replace, and options checked before any work ----------------------------------------

def test_export_refuses_a_folder_with_a_foreign_manifest(work, capsys, checkpoint):
    (work / "w" / "src").mkdir(parents=True)
    (work / "w" / "manifest.json").write_text('{"name": "app"}')
    (work / "w" / "src" / "a.js").write_text("x")
    assert_refused(capsys, work, "export", "--checkpoint", checkpoint, "--out", work / "w", match="not an edgeseg")


def test_export_refuses_a_bundle_holding_a_file_edgeseg_did_not_write(work, capsys, checkpoint):
    (work / "b" / "notes.txt").write_text("mine")
    assert_refused(capsys, work, "export", "--checkpoint", checkpoint, "--out", work / "b", match="notes.txt")


@pytest.mark.parametrize("make", ["file", "folder"])
def test_export_refuses_an_existing_file_or_foreign_folder(work, capsys, checkpoint, make):
    out = work / "out"
    if make == "file":
        out.write_text("a user's file")
    else:
        out.mkdir()
        (out / "photo.jpg").write_bytes(b"jpeg")
    assert_refused(capsys, work, "export", "--checkpoint", checkpoint, "--out", out)


def test_export_checks_its_out_folder_before_reading_the_checkpoint(work, capsys):
    (work / "out").write_text("a user's file")
    assert_refused(capsys, work, "export", "--checkpoint", work / "missing.pt", "--out", work / "out",
                   match="out exists and is not a folder")


@pytest.mark.parametrize("args, match", [
    (["--opset", "5"], "opsets 18-24"),
    (["--opset", "99"], "opsets 18-24"),
    (["--opset", "17"], "torchscript"),
    (["--opset", "25", "--exporter", "torchscript"], "opsets 9-23"),
    (["--int8"], "--calib-data"),
    (["--int8", "--calib-data", "imgs", "--max-miou-drop", "nan"], "finite"),
    (["--fp16", "--max-miou-drop", "-1"], ">= 0"),
    (["--min-agreement", "0"], "> 0"),
    (["--min-agreement", "1.5"], "<= 1"),
    (["--min-agreement", "nan"], "finite"),
    (["--max-attention-mb", "inf"], "finite"),
    (["--input-size", "100000x100000"], "8192"),
    (["--input-size", "4x4"], "at least 8x8"),
    (["--batch", "0"], "positive"),
    (["--outputs", "labels,banana"], "--outputs"),
])
def test_export_option_refused_before_any_work(work, capsys, checkpoint, args, match):
    assert_refused(capsys, work, "export", "--checkpoint", checkpoint, "--out", work / "new", *args, match=match)


@pytest.mark.parametrize("content, match", [(b"hello, I am text\n", "checkpoint"), (None, "not found")])
def test_export_refuses_a_bad_checkpoint(work, capsys, content, match):
    path = work / "x.pt"
    if content is not None:
        path.write_bytes(content)
    assert_refused(capsys, work, "export", "--checkpoint", path, "--out", work / "new", match=match)


# -- bundles: an untrusted manifest -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../other/m.onnx", "/etc/passwd", "../../../etc/passwd", "sub/../../x.onnx", ""])
def test_manifest_file_names_outside_the_bundle_are_refused(work, capsys, name):
    (work / "other").mkdir()
    shutil.copy(work / "b" / "model.onnx", work / "other" / "m.onnx")

    def point_outside(m):
        m["files"][name] = dict(m["files"].pop("model.onnx"))

    _edit_manifest(work / "b", point_outside)
    assert_refused(capsys, work, "run", work / "b", "--source", work / "imgs", match="manifest")


def test_a_symlink_in_a_bundle_that_leads_outside_is_refused(work, capsys):
    outside = work / "elsewhere.onnx"
    shutil.move(work / "b" / "model.onnx", outside)
    (work / "b" / "model.onnx").symlink_to(outside)
    assert_refused(capsys, work, "run", work / "b", "--source", work / "imgs", match="outside")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.pop("input"), "input size"),
    (lambda m: m.pop("model"), "model name"),
    (lambda m: m["model"].update(palette=["red", "green"]), "palette"),
    (lambda m: m["model"].update(classes="dark,bright"), "classes"),
    (lambda m: m.update(files=["model.onnx"]), "file list"),
    (lambda m: m["input"].update(size=[8]), "input size"),
    (lambda m: m.update(format_version="one"), "format_version"),
    (lambda m: m["input"].update(batch=0), "input.batch"),
    (lambda m: m["input"].update(resize="squash"), "input.resize"),
    (lambda m: m["model"].update(mean=[0.5]), "model.mean"),
    (lambda m: m["files"]["model.onnx"].pop("sha256"), "file entry"),
    (lambda m: m["files"]["model.onnx"].update(bytes="12"), "file entry"),
    (lambda m: m["files"]["model.onnx"].update(kind="engine"), "engine entry"),
    (lambda m: m.update(calibration={"method": "entropy", "images": 4}), "calibration"),
    (lambda m: m.update(crf={"params": {}, "standalone": "../crf.onnx", "fused": "m.onnx"}), "outside"),
    (lambda m: m.update(outputs={"name": "labels"}), "outputs"),
    (lambda m: m["inputs"][0].pop("dtype"), "dtype"),
    (lambda m: m.update(gate=["passed"]), "report section"),
])
def test_manifest_missing_or_mistyped_parts_are_refused(work, capsys, edit, match):
    _edit_manifest(work / "b", edit)
    assert_refused(capsys, work, "run", work / "b", "--source", work / "imgs", match=match)


def test_a_manifest_that_is_not_json_is_refused(work, capsys):
    (work / "b" / "manifest.json").write_text('{"format": "edgeseg-bundle",')
    assert_refused(capsys, work, "eval", work / "b", "--data", _spec(work), match="line 1")


def test_a_tampered_model_is_refused(work, capsys):
    with open(work / "b" / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert_refused(capsys, work, "run", work / "b", "--source", work / "imgs", match="sha256")


@pytest.mark.parametrize("command", ["run", "calibrate", "bench", "eval"])
def test_a_missing_bundle_is_named(work, capsys, command):
    extra = {"run": ["--source", work / "imgs"], "calibrate": ["--calib-data", work / "imgs"], "bench": [],
             "eval": ["--data", _spec(work)]}[command]
    assert_refused(capsys, work, command, work / "nope", *extra, match="nope")


def test_a_folder_that_is_not_a_bundle_is_named(work, capsys):
    assert_refused(capsys, work, "run", work / "imgs", "--source", work / "imgs", match="imgs is not a bundle")


def _foreign_onnx(path: Path) -> Path:
    node = helper.make_node("Identity", ["x"], ["labels"])
    graph = helper.make_graph([node], "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("command", ["eval", "bench"])
def test_a_foreign_onnx_file_is_refused(work, capsys, command):
    model = _foreign_onnx(work / "foreign.onnx")
    extra = ["--data", _spec(work)] if command == "eval" else ["--iters", "1", "--warmup", "0"]
    assert_refused(capsys, work, command, model, *extra, match="uint8 N×H×W×3", max_lines=2)  # bench logs its plan


# -- run: never over its own input, never over what edgeseg did not write -----------------------------------------

@pytest.mark.parametrize("source, sink", [
    ("clip.avi", "clip.avi"),
    ("imgs", "labels:imgs"),
    ("imgs", "overlays:imgs"),
    ("imgs", "labels:imgs/out"),
    ("imgs", "labels:."),
])
def test_run_never_writes_over_its_source(work, capsys, monkeypatch, source, sink):
    monkeypatch.chdir(work)
    assert_refused(capsys, work, "run", "b", "--source", source, "--sink", sink, match="input")


def test_run_refuses_a_depth_folder_as_sink(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    assert_refused(capsys, work, "run", "b", "--source", "imgs", "--depth", "imgs", "--sink", "labels:imgs",
                   match="depth|input")


def test_run_refuses_a_video_sink_that_is_a_folder(work, capsys):
    (work / "out.mp4").mkdir()
    assert_refused(capsys, work, "run", work / "b", "--source", work / "clip.avi", "--sink", work / "out.mp4",
                   match="folder")


def test_run_replaces_an_existing_video_only_with_overwrite(work, capsys):
    (work / "out.avi").write_bytes(b"the user's own video")
    assert_refused(capsys, work, "run", work / "b", "--source", work / "clip.avi", "--sink", work / "out.avi",
                   match="--overwrite")
    outcome = run(capsys, "run", work / "b", "--source", work / "clip.avi", "--sink", work / "out.avi",
                  "--overwrite")
    assert outcome.code == 0, outcome.stderr
    assert (work / "out.avi").read_bytes()[:4] == b"RIFF"


@pytest.mark.parametrize("kind", ["labels", "overlays"])
def test_run_refuses_a_folder_sink_with_files_it_did_not_write(work, capsys, kind):
    (work / "mine").mkdir()
    (work / "mine" / "f000.png").write_bytes(b"precious")
    assert_refused(capsys, work, "run", work / "b", "--source", work / "imgs", "--sink", f"{kind}:{work / 'mine'}",
                   match="did not write")


@pytest.mark.parametrize("args, match", [
    (["--source", "nowhere"], "not found"),
    (["--source", "imgs", "--sink", "out.txt"], "unknown sink"),
    (["--source", "imgs", "--sink", "labels:"], "needs a folder"),
    (["--source", "imgs", "--depth", "imgs"], "takes no depth"),
    (["--source", "imgs", "--streams", "0"], "positive"),
    (["--source", "imgs", "--device", "banana"], "cpu, cuda"),
    (["--source", "imgs", "--precision", "int8"], "no int8"),
    (["--source", "imgs/f000.png"], "one image"),
])
def test_run_bad_options(work, capsys, monkeypatch, args, match):
    monkeypatch.chdir(work)
    assert_refused(capsys, work, "run", "b", *args, match=match)


def test_run_names_outputs_uniquely_per_input(work, capsys):
    Image.fromarray(np.full((8, 12, 3), 200, np.uint8)).save(work / "imgs" / "f000.jpg")
    outcome = run(capsys, "run", work / "b", "--source", work / "imgs", "--sink", f"labels:{work / 'out'}")
    assert outcome.code == 0, outcome.stderr
    assert sorted(p.name for p in (work / "out").glob("*.png")) == ["f000.png", "f000_png.png", "f001.png"]


def test_run_skips_a_decompression_bomb_frame(work, capsys):
    bomb_png(work / "imgs" / "bomb.png")
    outcome = run(capsys, "run", work / "b", "--source", work / "imgs", "--json")
    assert outcome.code == 0, outcome.stderr
    summary = json.loads(outcome.stdout)
    assert summary["frames_out"] == 2 and summary["dropped"] == 1


def test_a_second_run_may_write_into_its_own_labels_folder(work, capsys):
    for _ in range(2):
        outcome = run(capsys, "run", work / "b", "--source", work / "imgs", "--sink", f"labels:{work / 'out'}")
        assert outcome.code == 0, outcome.stderr


# -- bench and report: what --report / --out may replace, paths inside report.json ------------------------------

@pytest.mark.parametrize("args, match", [
    (["--warmup", "-1"], "0 or more"),
    (["--overlays", "-2"], "0 or more"),
    (["--iters", "0"], "positive"),
    (["--device", "banana"], "cpu, cuda"),
])
def test_bench_bad_options(work, capsys, args, match):
    assert_refused(capsys, work, "bench", work / "b", *args, match=match)


def test_bench_refuses_a_report_folder_it_did_not_write_before_measuring(work, capsys):
    (work / "r").mkdir()
    (work / "r" / "thesis.tex").write_text("x")
    outcome = assert_refused(capsys, work, "bench", work / "b", "--report", work / "r", "--iters", "1",
                             match="not an edgeseg")
    assert "engine" not in outcome.stdout  # refused before anything was measured


def test_bench_refuses_a_report_inside_its_input(work, capsys):
    assert_refused(capsys, work, "bench", work / "b", "--report", work / "b" / "report", match="input")


@pytest.fixture
def report_dir(work, capsys):
    outcome = run(capsys, "bench", work / "b", "--data", _spec(work), "--iters", "2", "--warmup", "0",
                  "--report", work / "r")
    assert outcome.code == 0, outcome.stderr
    return work / "r"


def _edit_report(folder: Path, edit) -> None:
    path = folder / "report.json"
    report = json.loads(path.read_text())
    edit(report)
    path.write_text(json.dumps(report))


@pytest.mark.parametrize("where", ["sample", "overlay"])
@pytest.mark.parametrize("path", ["../../victim.txt", "/etc/hostname", "samples/../../victim.txt"])
def test_report_paths_outside_the_run_are_refused(work, capsys, report_dir, where, path):
    (work / "victim.txt").write_text("do not touch")

    def inject(report):
        if where == "sample":
            report["runs"][0]["samples"][0]["image"] = path
        else:
            report["rows"][0]["overlays"][0] = path

    _edit_report(report_dir, inject)
    assert_refused(capsys, work, "report", report_dir, "--out", work / "merged", match="outside")


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.pop("runs"), "no runs"),
    (lambda r: r.update(rows="none"), "no rows"),
    (lambda r: r["rows"][0].pop("latency_ms"), "latency_ms"),
    (lambda r: r["rows"][0].update(run="run9"), "run9"),
    (lambda r: r["rows"][0].update(accuracy={"miou": "high"}), "miou"),
    (lambda r: r.update(format="something-else"), "not an edgeseg bench report"),
])
def test_report_json_missing_or_mistyped_parts_are_refused(work, capsys, report_dir, edit, match):
    _edit_report(report_dir, edit)
    assert_refused(capsys, work, "report", report_dir, "--out", work / "merged", match=match)


def test_report_refuses_to_write_over_its_input(work, capsys, report_dir):
    assert_refused(capsys, work, "report", report_dir, "--out", report_dir, match="input")


def test_report_refuses_a_folder_it_did_not_write(work, capsys, report_dir):
    (work / "docs").mkdir()
    (work / "docs" / "index.md").write_text("# mine")
    assert_refused(capsys, work, "report", report_dir, "--out", work / "docs", match="not an edgeseg")


def test_report_replaces_its_own_merged_report(work, capsys, report_dir):
    for _ in range(2):
        outcome = run(capsys, "report", report_dir, "--out", work / "merged")
        assert outcome.code == 0, outcome.stderr
    assert (work / "merged" / "report.html").is_file()


# -- eval and data: values and files checked at the boundary -----------------------------------------------------

def test_eval_names_a_label_value_beyond_the_classes(work, capsys):
    Image.fromarray(np.full((8, 12), 7, np.uint8)).save(work / "data" / "labels" / "f1.png")
    assert_refused(capsys, work, "eval", work / "b", "--data", _spec(work), match=r"f1.png has label value 7",
                   max_lines=2)  # eval announces what it scores; the second image is refused while scoring


@pytest.mark.parametrize("args, match", [
    (["--split", "bogus", "--data", "synthetic"], "splits train and val"),
    (["--device", "banana"], "auto, cpu, cuda"),
    (["--max-images", "-3"], "positive"),
    (["--data", "cityscapes:/data/a,b"], "commas separate"),
    (["--data", "folder:/x,/y,/z,/w"], "commas separate"),
    (["--data", "martian:/x"], "unknown data spec"),
])
def test_eval_bad_options(work, capsys, args, match):
    assert_refused(capsys, work, "eval", work / "b", *args, match=match)


def test_eval_refuses_cuda_without_a_gpu(work, capsys, checkpoint):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_refused(capsys, work, "eval", checkpoint, "--data", _spec(work), "--device", "cuda",
                   match="no CUDA device")


def test_a_classes_file_that_is_not_utf8_is_named(work, capsys):
    (work / "data" / "classes.txt").write_bytes("dark\nbr\xeflliant\n".encode("latin-1"))
    assert_refused(capsys, work, "eval", work / "b", "--data", _spec(work), match="classes.txt: not UTF-8")


# -- calibrate -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    (["--calib-data", "nowhere"], "not found"),
    (["--calib-data", "imgs", "--max-miou-drop", "nan"], "finite"),
    (["--calib-data", "imgs", "--calib-size", "0"], "positive"),
    (["--calib-data", "imgs", "--trt-version", "latest"], "not a TensorRT version"),
])
def test_calibrate_bad_options_leave_the_bundle_as_it_was(work, capsys, monkeypatch, args, match):
    monkeypatch.chdir(work)
    assert_refused(capsys, work, "calibrate", "b", *args, match=match)


def test_calibrate_on_only_unreadable_images_is_refused(work, capsys):
    (work / "bombs").mkdir()
    bomb_png(work / "bombs" / "bomb.png")
    (work / "bombs" / "junk.jpg").write_bytes(b"not a jpeg")
    assert_refused(capsys, work, "calibrate", work / "b", "--calib-data", work / "bombs", "--no-fp16",
                   match="no usable image", max_lines=2)



# -- the Python API refuses what the CLI refuses -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"max_miou_drop": float("nan")}, {"max_miou_drop": float("inf")},
                                    {"max_miou_drop": -0.5},
                                    {"calib_size": 0}, {"method": "vibes"}, {"target": "gpu"}])
def test_calibration_options_validate_themselves(kwargs):
    from edgeseg.calibration.pipeline import CalibrationOptions
    from edgeseg.errors import EdgesegError

    with pytest.raises(EdgesegError):
        CalibrationOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [{"min_agreement": float("nan")}, {"min_agreement": 0.0},
                                    {"max_attention_mb": float("inf")}, {"batch": 0},
                                    {"input_size": (100000, 100000)}])
def test_export_options_validate_themselves(kwargs):
    from edgeseg.errors import EdgesegError
    from edgeseg.export.pipeline import ExportOptions

    with pytest.raises(EdgesegError):
        ExportOptions(**kwargs)
