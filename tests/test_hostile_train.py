"""Hostile input to ``edgeseg train`` (and the checkpoints and configs it reads): every refusal is one line, exit 1,
and leaves the file tree as it was; a run that fails leaves nothing half-written, one interrupted keeps its place."""

from __future__ import annotations

import errno
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fixtures import make_folder
from hostile_harness import assert_refused, run, snapshot
from PIL import Image

from edgeseg.cli.main import Terminated
from edgeseg.errors import EdgesegError
from edgeseg.meta import ModelMeta
from edgeseg.models import create, load_checkpoint, save_checkpoint
from edgeseg.train.config import TrainConfig
from edgeseg.train.trainer import Trainer

TINY = ("--model", "lednet", "--crop", "32x64", "--batch-size", "2", "--iters", "1")
FAST = ("workers=0", "val_max_images=2")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread is many times faster than two that wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data(tmp_path):
    """A 3-class folder dataset of three 8×12 images (frame0..2); returns its data spec."""
    images, labels = make_folder(tmp_path / "ds")
    return f"folder:{images},{labels}"


def train(out, data, *sets, extra=(), fast=True):
    """``edgeseg train`` arguments for a one-step lednet run (``sets``: more ``--set`` items)."""
    return ("train", *TINY, "--data", data, "--out", out, *extra, "--set", *(FAST if fast else ()), *sets,
            "log_every=1")


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# -- 1. the run folder ------------------------------------------------------------------------------------------
def test_second_run_into_a_run_folder_is_refused_before_any_work(tmp_path, capsys, data):
    out = tmp_path / "run"
    assert run(capsys, *train(out, data)).code == 0
    outcome = assert_refused(capsys, tmp_path, *train(out, data), match="already holds a training run.*--resume"
                                                                         ".*--overwrite")
    assert "training lednet" not in outcome.stderr  # refused before the data was read


@pytest.mark.parametrize("name", ["last.pt", "best.pt", "metrics.jsonl", "config.json"])
def test_any_run_file_marks_a_run_folder(tmp_path, capsys, data, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_text("an earlier run's\n")
    assert_refused(capsys, tmp_path, *train(out, data), match=name)


def test_overwrite_replaces_only_the_runs_own_files(tmp_path, capsys, data):
    out = tmp_path / "run"
    assert run(capsys, *train(out, data, extra=("--iters", "2"))).code == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "sub").mkdir()
    outcome = run(capsys, *train(out, data, extra=("--overwrite",)))
    assert outcome.code == 0, outcome.stderr
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "sub").is_dir()
    assert [r["iter"] for r in _records(out) if "lr" in r] == [1]  # the old run's log is gone, not mixed in
    assert json.loads((out / "config.json").read_text())["iters"] == 1
    assert load_checkpoint(out / "last.pt")["extra"]["iteration"] == 1


def test_failed_overwrite_keeps_the_earlier_run(tmp_path, capsys, data, monkeypatch):
    out = tmp_path / "run"
    assert run(capsys, *train(out, data)).code == 0

    def broken(self, batches):
        raise EdgesegError("the data went away")

    monkeypatch.setattr(Trainer, "_step", broken)
    assert_refused(capsys, tmp_path, *train(out, data, extra=("--overwrite",)), match="went away", max_lines=2)


def test_out_file_is_refused(tmp_path, capsys, data):
    (tmp_path / "f").write_text("not a folder\n")
    assert_refused(capsys, tmp_path, *train(tmp_path / "f", data), match="not a folder")


def test_out_file_with_resume_is_refused(tmp_path, capsys, data):
    (tmp_path / "f").write_text("not a folder\n")
    assert_refused(capsys, tmp_path, *train(tmp_path / "f", data, extra=("--resume",)), match="not a folder")


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys, data):
    out = tmp_path / "run"
    assert run(capsys, *train(out, data)).code == 0
    assert_refused(capsys, tmp_path, *train(out, data, extra=("--resume", "--overwrite")), match="one of them")


def test_a_folder_named_like_a_run_file_is_refused_even_with_overwrite(tmp_path, capsys, data):
    (tmp_path / "run" / "best.pt").mkdir(parents=True)
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data, extra=("--overwrite",)),
                   match="best.pt is a folder")


def test_demo_out_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("not a folder\n")
    assert_refused(capsys, tmp_path, "demo", "--model", "lednet", "--out", tmp_path / "f", match="not a folder")


# -- 2. config values --------------------------------------------------------------------------------------------
BAD_SETS = {
    "lr=nan": "lr", "lr=inf": "lr", "lr=0": "lr", "lr=-0.1": "lr",
    "weight_decay=-1": "weight_decay", "weight_decay=nan": "weight_decay",
    "momentum=-0.5": "momentum", "momentum=nan": "momentum", "jitter=-0.1": "jitter", "jitter=nan": "jitter",
    "poly_power=nan": "poly_power", "kd_temperature=0": "kd_temperature", "aux_weight=-1": "aux_weight",
    "max_minutes=-1": "max_minutes", "max_minutes=nan": "max_minutes", "max_minutes=0": "max_minutes",
    "crop=abc": "crop", "crop=100000x100000": "crop", "crop=[32]": "crop",
    "model_kwargs=notadict": "model_kwargs", "model_kwargs={'foo': 1}": "lednet.*'foo'",
    "model_kwargs={'dropout': 'x'}": "lednet.*dropout",
    "workers=-1": "workers", "warmup=-1": "warmup", "seed=-1": "seed", "iters=2.5": "iters",
    "val_max_images=0": "val_max_images",
    "scales=[2.0,1.0]": "scales", "scales=[0,1]": "scales", "scales=abc": "scales", "scales=[1,2,3]": "scales",
    "class_weights=['a','b','c']": "class_weights", "class_weights=[1,2]": "class_weights",
    "device=banana": "banana", "amp=banana": "amp", "kd_weight=-1": "kd_weight",
    "weights=missing.pt": "missing.pt.*not found",
}


@pytest.mark.parametrize("item", list(BAD_SETS))
def test_bad_set_value_is_one_line_and_writes_nothing(tmp_path, capsys, data, item):
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data, item), match=BAD_SETS[item])


@pytest.mark.parametrize("flags, match", [(("--minutes", "-1"), "minutes"), (("--minutes", "nan"), "minutes"),
                                          (("--crop", "100000x100000"), "8192"), (("--lr", "nan"), "lr")])
def test_bad_flag_is_one_line(tmp_path, capsys, data, flags, match):
    outcome = run(capsys, *train(tmp_path / "run", data, extra=flags))
    assert outcome.code == 1 and len(outcome.lines) == 1 and "Traceback" not in outcome.stderr, outcome.stderr
    assert match in outcome.lines[0] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, match", [("lr: .nan\n", "lr"), ("crop: [100000, 100000]\n", "crop"),
                                         ("model_kwargs: [1, 2]\n", "model_kwargs"), ("workers: -1\n", "workers")])
def test_bad_values_in_a_config_file(tmp_path, capsys, data, text, match):
    base = "model: lednet\niters: 1\nbatch_size: 2\ncrop: [32, 64]\nworkers: 0\nval_max_images: 2\n"
    (tmp_path / "c.yaml").write_text(base + text)  # a repeated key: the last one counts
    assert_refused(capsys, tmp_path, "train", "--data", data, "--out", tmp_path / "run", "--config",
                   tmp_path / "c.yaml", match=match)


def test_validate_does_not_change_the_config():
    config = TrainConfig()
    assert config.validate() is config and config == TrainConfig() and config.crop is None
    resolved = config.resolved()
    assert resolved.crop == (128, 256) and resolved.scales == (0.75, 1.5) and config.crop is None


def test_trainer_does_not_change_the_config_it_is_given(tmp_path, data):
    config = TrainConfig(model="lednet", data=data, out=str(tmp_path / "run"), iters=1, batch_size=2, workers=0)
    Trainer(config)
    assert config.crop is None and config.scales is None
    assert not (tmp_path / "run").exists()  # nothing is written before training


# -- 3. config files that do not parse -------------------------------------------------------------------------
CONFIG_FILES = {
    "broken.yaml": (b"model: lednet\nlr: [0.1\niters: 2\n", r"broken\.yaml: line [34]"),
    "code.yaml": (b"model: lednet\nlr: !!python/object/apply:os.system ['true']\n", r"code\.yaml: line 2"),
    "broken.json": (b'{\n  "lr": 0.1,\n}\n', r"broken\.json: line 3"),
    "latin1.yaml": (b"model: lednet\n# caf\xe9\n", r"latin1\.yaml: line 2.*UTF-8"),
    "latin1.json": (b'{"model":\n "caf\xe9"}\n', r"latin1\.json: line 2.*UTF-8"),
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_config_file_that_does_not_parse_names_file_and_line(tmp_path, capsys, data, name):
    content, match = CONFIG_FILES[name]
    (tmp_path / name).write_bytes(content)
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data, extra=("--config", tmp_path / name)),
                   match=match)


# -- 4. checkpoints ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    """A valid 3-class lednet checkpoint, as the dict torch.load gives."""
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    meta = ModelMeta(classes=["floor", "wall", "person"], palette=[(1, 2, 3), (4, 5, 6), (7, 8, 9)],
                     input_size=(8, 12))
    save_checkpoint(path, create("lednet", num_classes=3), name="lednet", meta=meta)
    return torch.load(path, weights_only=True)


def _meta(**changes):
    def edit(ckpt):
        ckpt["meta"].update(changes)
    return edit


CHECKPOINTS = {
    "no-meta": (lambda c: c.pop("meta"), "no meta"),
    "meta-not-a-dict": (lambda c: c.update(meta=[1, 2]), "meta is not a mapping"),
    "palette-of-strings": (_meta(palette=["red", "green", "blue"]), "palette"),
    "classes-not-a-list": (_meta(classes=5), "classes"),
    "classes-not-strings": (_meta(classes=[1, 2, 3]), "classes"),
    "palette-too-short": (_meta(palette=[[1, 2, 3]]), "1 colours for 3 classes"),
    "colour-out-of-range": (_meta(palette=[[1, 2, 300]] * 3), "palette"),
    "std-zero": (_meta(std=[0, 0, 0]), "std"),
    "input-size-text": (_meta(input_size="big"), "input_size"),
    "num-classes-mismatch": (lambda c: c.update(num_classes=5), "num_classes"),
    "state-dict-not-tensors": (lambda c: c.update(state_dict={"a": 1}), "state_dict"),
    "no-model-name": (lambda c: c.pop("model"), "model name"),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_malformed_checkpoint_is_one_line(tmp_path, capsys, data, payload, case):
    edit, match = CHECKPOINTS[case]
    ckpt = {k: (dict(v) if isinstance(v, dict) else v) for k, v in payload.items()}
    edit(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    assert_refused(capsys, tmp_path, "eval", tmp_path / "bad.pt", "--data", data, match=match)


@pytest.mark.parametrize("content", [b"hello, I am text\n", b"", b"PK\x03\x04 not a zip"])
def test_a_file_that_is_not_a_checkpoint(tmp_path, capsys, data, content):
    (tmp_path / "x.pt").write_bytes(content)
    assert_refused(capsys, tmp_path, "eval", tmp_path / "x.pt", "--data", data,
                   match=r"x\.pt: not a PyTorch checkpoint file")


def test_a_truncated_checkpoint(tmp_path, capsys, data, payload):
    torch.save(payload, tmp_path / "good.pt")
    whole = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    assert_refused(capsys, tmp_path, "eval", tmp_path / "cut.pt", "--data", data,
                   match="not a PyTorch checkpoint file.*truncated")


def test_a_pickled_object_is_not_loaded(tmp_path, capsys, data):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "whole.pt")
    assert_refused(capsys, tmp_path, "eval", tmp_path / "whole.pt", "--data", data, match="pickled Python objects")


def test_a_bare_state_dict_gets_a_cli_hint(tmp_path, capsys, data, payload):
    torch.save(payload["state_dict"], tmp_path / "bare.pt")
    assert_refused(capsys, tmp_path, "eval", tmp_path / "bare.pt", "--data", data,
                   match=r"bare state dict.*edgeseg train --model NAME .*--set weights=")


def test_training_from_a_bare_state_dict(tmp_path, capsys, data, payload):
    """The hint works: ``--set weights=`` starts a run from a bare state dict, giving a full checkpoint."""
    torch.save(payload["state_dict"], tmp_path / "bare.pt")
    outcome = run(capsys, *train(tmp_path / "run", data, f"weights={tmp_path / 'bare.pt'}"))
    assert outcome.code == 0, outcome.stderr
    assert load_checkpoint(tmp_path / "run" / "best.pt")["model"] == "lednet"
    (tmp_path / "bare.pt").unlink()  # a resumed run starts from its own last.pt, not from the weights
    outcome = run(capsys, "train", "--out", tmp_path / "run", "--resume", "--iters", "2")
    assert outcome.code == 0, outcome.stderr


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path, capsys, data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_text("text\n")
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data, extra=("--resume",)),
                   match="not a PyTorch checkpoint file")


# -- 5. a full or read-only disk --------------------------------------------------------------------------------
ENFORCE = "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0\nframe #0: c10::..."


@pytest.mark.parametrize("free, error, match", [
    (0, RuntimeError(ENFORCE), r"cannot write \S*best.pt: no space left on device"),
    (10**12, RuntimeError(ENFORCE), r"cannot write \S*best.pt: \[enforce fail at inline_container.cc:672\]"),
    (10**12, OSError(errno.ENOSPC, "No space left on device"), r"cannot write \S*best.pt: No space left"),
    (10**12, OSError(errno.EROFS, "Read-only file system"), r"cannot write \S*best.pt: Read-only"),
])
def test_checkpoint_on_a_full_disk(tmp_path, capsys, data, monkeypatch, free, error, match):
    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half")  # torch got this far before the disk filled
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(total=10**12, used=0, free=free))
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data), match=match,
                   max_lines=6)  # the plan, the training bar, the validation's announcement and bar, the error
    assert not (tmp_path / "run").exists()  # no temp file, no config.json, no metrics.jsonl, no folder


def test_failure_in_an_existing_folder_keeps_the_folder_empty(tmp_path, capsys, data, monkeypatch):
    (tmp_path / "run").mkdir()

    def broken(self, batches):
        raise EdgesegError("loss became nan at iteration 0; lower --lr")

    monkeypatch.setattr(Trainer, "_step", broken)
    assert_refused(capsys, tmp_path, *train(tmp_path / "run", data), match="loss became nan", max_lines=2)
    assert (tmp_path / "run").is_dir()


# -- 6. interrupted and failed runs ---------------------------------------------------------------------------------
def _interrupt_at(monkeypatch, call: int, exc: type[BaseException]) -> None:
    original, calls = Trainer._step, []

    def step(self, batches):
        calls.append(1)
        if len(calls) == call:
            raise exc
        return original(self, batches)

    monkeypatch.setattr(Trainer, "_step", step)


@pytest.mark.parametrize("exc, code, said", [(KeyboardInterrupt, 130, "interrupted"), (Terminated, 143, "terminated")])
def test_interrupt_saves_last_and_resume_continues(tmp_path, capsys, data, monkeypatch, exc, code, said):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 3, exc)
    outcome = run(capsys, *train(out, data, "iters=4"))
    assert outcome.code == code and outcome.lines[-1] == f"edgeseg: {said}", outcome.stderr
    assert load_checkpoint(out / "last.pt")["extra"]["iteration"] == 2
    assert json.loads((out / "config.json").read_text())["iters"] == 4
    assert [r["iter"] for r in _records(out)] == [1, 2]
    monkeypatch.undo()
    outcome = run(capsys, "train", "--out", out, "--resume", "--json")
    assert outcome.code == 0, outcome.stderr
    assert json.loads(outcome.stdout)["iteration"] == 4
    assert [r["iter"] for r in _records(out) if "lr" in r] == [1, 2, 3, 4]


def test_interrupt_before_any_step_leaves_nothing(tmp_path, capsys, data, monkeypatch):
    _interrupt_at(monkeypatch, 1, KeyboardInterrupt)
    before = snapshot(tmp_path)
    assert run(capsys, *train(tmp_path / "run", data)).code == 130
    assert snapshot(tmp_path) == before


def test_interrupted_run_resumes_exactly(tmp_path, data):
    def config(out):
        return TrainConfig(model="lednet", data=data, out=str(out), iters=3, batch_size=2, crop=(32, 64), workers=0,
                           warmup=1, val_every=100, checkpoint_every=100, val_max_images=1, log_every=1)

    Trainer(config(tmp_path / "a")).run()
    interrupted = Trainer(config(tmp_path / "b"))
    forwards = []

    def hook(module, args, output):  # Ctrl-C after the 2nd step's forward pass (dropout has drawn from the RNG)
        forwards.append(1)
        if module.training and len(forwards) == 2:
            raise KeyboardInterrupt

    interrupted.model.register_forward_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    assert load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["iteration"] == 1
    Trainer(config(tmp_path / "b"), resume=True).run()
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_failed_resume_leaves_the_run_as_it_was(tmp_path, capsys, data, monkeypatch):
    out = tmp_path / "run"
    assert run(capsys, *train(out, data, "iters=1")).code == 0
    _interrupt_at(monkeypatch, 2, RuntimeError("CUDA error: an illegal memory access"))
    before = snapshot(out)
    outcome = run(capsys, *train(out, data, "iters=3", extra=("--resume", "--iters", "3")))
    assert outcome.code == 1 and snapshot(out) == before  # no log lines past last.pt, config.json untouched


# -- 7. bad data found by a DataLoader worker -----------------------------------------------------------------------
def _bad_label(data_dir):
    Image.fromarray(np.resize(np.array([0, 7, 1, 2], np.uint8), (8, 12))).save(data_dir / "labels" / "frame2.png")


def _bad_image(data_dir):
    (data_dir / "images" / "frame2.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


@pytest.mark.parametrize("spoil, match", [(_bad_label, r"frame2\.png has label value 7"),
                                          (_bad_image, r"cannot decode image \S*frame2\.jpg")])
def test_bad_sample_in_a_worker_is_one_line_and_leaves_nothing(tmp_path, capsys, data, spoil, match):
    spoil(tmp_path / "ds")
    # default workers (2): the bad sample is read in a worker process; batch 3 reads every sample
    args = ("train", "--model", "lednet", "--crop", "32x64", "--batch-size", "3", "--iters", "1", "--data", data,
            "--out", tmp_path / "run")
    outcome = assert_refused(capsys, tmp_path, *args, match=match, max_lines=2)
    assert "Original Traceback" not in outcome.stderr and "DataLoader worker" not in outcome.stderr
    assert not (tmp_path / "run").exists()
