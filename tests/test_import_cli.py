"""``edgeseg import``: robust reading (wrappers, nesting, unused heads), and every wrong file refused with one
line on stderr, exit code 1, and nothing written."""

from __future__ import annotations

import pytest
import torch
from parity import load_fixture

from edgeseg.errors import CheckpointError
from edgeseg.models import create, load_model, save_checkpoint
from edgeseg.models.importers import read_state_dict


@pytest.fixture(scope="module")
def lednet_state():
    return load_fixture("lednet").state_dict()


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


def _refused(result, out, *words):
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeseg: error:"), result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("wrap", ["bare", "module", "state_dict", "model", "params"])
def test_reads_wrapped_and_nested_state_dicts(tmp_path, lednet_state, wrap):
    state = {f"module.{k}": v for k, v in lednet_state.items()} if wrap != "bare" else dict(lednet_state)
    obj = state if wrap in ("bare", "module") else {wrap: state, "epoch": 7, "optimizer": {"lr": 0.01}}
    read = read_state_dict(_save(tmp_path / "w.pth", obj))
    assert list(read) == list(lednet_state)


def test_import_lednet_writes_a_checkpoint_with_the_sources_setup(tmp_path, cli_here, lednet_state):
    src = _save(tmp_path / "lednet.pth", {"state_dict": {f"module.{k}": v for k, v in lednet_state.items()}})
    out = tmp_path / "lednet.pt"
    r = cli_here("import", "lednet", src, "--out", str(out), "--num-classes", "19")
    assert r.returncode == 0, r.stderr
    assert "lednet" in r.stdout and "512x1024" in r.stdout and "left out 2 tensors" in r.stdout
    model, meta, name = load_model(out)
    assert name == "lednet" and meta.classes[0] == "road" and meta.mean == (0.0, 0.0, 0.0)
    assert meta.extra["imported"]["format"] == "lednet"
    r = cli_here("import", "--list")
    assert r.returncode == 0 and "coincheung-bisenetv2" in r.stdout and "pool5a=True" in r.stdout


def test_refuses_a_checkpoint_of_another_format(tmp_path, cli_here, lednet_state):
    src = _save(tmp_path / "lednet.pth", lednet_state)
    out = tmp_path / "o.pt"
    _refused(cli_here("import", "coincheung-bisenetv2", src, "--out", str(out)), out,
             "is a lednet checkpoint, not coincheung-bisenetv2")


def test_refuses_a_random_pt_file(tmp_path, cli_here):
    src = _save(tmp_path / "random.pt", {"weight": torch.zeros(3, 3), "bias": torch.zeros(3)})
    out = tmp_path / "o.pt"
    _refused(cli_here("import", "lednet", src, "--out", str(out)), out, "is not a lednet checkpoint")


def test_refuses_a_truncated_file(tmp_path, cli_here, lednet_state):
    whole = (tmp_path / "whole.pth")
    torch.save(lednet_state, whole)
    src = tmp_path / "truncated.pth"
    src.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "o.pt"
    _refused(cli_here("import", "lednet", str(src), "--out", str(out)), out, "truncated")


def test_refuses_an_edgeseg_checkpoint(tmp_path, cli_here):
    src = save_checkpoint(tmp_path / "mine.pt", create("lednet", num_classes=3), name="lednet")
    out = tmp_path / "o.pt"
    _refused(cli_here("import", "lednet", str(src), "--out", str(out)), out, "edgeseg checkpoint already")


@pytest.mark.parametrize("damage", ["missing", "shape", "extra"])
def test_keys_that_do_not_fit_are_one_line_listing_the_first(tmp_path, cli_here, lednet_state, damage):
    state = dict(lednet_state)
    if damage == "missing":
        del state["encoder.layers.0.bn1_l.weight"]
        words = ("1 missing", "encoder.1.left.bn1.weight")
    elif damage == "shape":
        state["decoder.apn.conv1.conv.0.weight"] = torch.zeros(1, 1, 5, 5)
        words = ("of another shape", "decoder.conv1.conv.weight (1, 1, 5, 5) vs (1, 1, 7, 7)")
    else:
        state.update({f"decoder.apn.extra{i}.weight": torch.zeros(1) for i in range(5)})
        words = ("5 unexpected", "decoder.extra0.weight", "and 2 more")
    src = _save(tmp_path / "d.pth", state)
    out = tmp_path / "o.pt"
    _refused(cli_here("import", "lednet", src, "--out", str(out), "--num-classes", "19"), out, "does not fit", *words)


@pytest.mark.parametrize("case", ["over-input", "bad-dataset", "wrong-dataset", "wrong-count", "unknown-format"])
def test_bad_requests_are_one_line(tmp_path, cli_here, lednet_state, case):
    src = _save(tmp_path / "lednet.pth", lednet_state)
    out = tmp_path / "o.pt"
    args = {"over-input": ["lednet", src, "--out", src],
            "bad-dataset": ["lednet", src, "--out", str(out), "--dataset", "kitti"],
            "wrong-dataset": ["lednet", src, "--out", str(out), "--dataset", "voc"],
            "wrong-count": ["lednet", src, "--out", str(out), "--num-classes", "20"],
            "unknown-format": ["bisenet-v9", src, "--out", str(out)]}[case]
    words = {"over-input": "write over the input", "bad-dataset": "unknown dataset 'kitti'",
             "wrong-dataset": "19 classes, voc has 21", "wrong-count": "--num-classes 20",
             "unknown-format": "unknown format 'bisenet-v9'"}[case]
    _refused(cli_here("import", *args), out, words)
    assert (tmp_path / "lednet.pth").stat().st_size > 0


def test_read_refuses_a_file_without_a_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(_save(tmp_path / "n.pth", {"epoch": 3, "note": "hello"}))
