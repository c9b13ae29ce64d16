"""The file system misbehaving under edgeseg: killed runs, full and read-only disks, leftovers of earlier runs,
and a bundle interrupted while it is being changed. Nothing is lost, nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bench_fixtures import make_threshold_bundle, make_threshold_data
from hostile_harness import assert_refused, run, snapshot

from edgeseg.errors import EdgesegError
from edgeseg.fileio import TMP_TAG, FolderKind, atomic_path, check_replaceable, clean_stale_temps, inside
from edgeseg.runtime.bundle import BUNDLE_KIND


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _video(path: Path, frames: int, size=(120, 160)) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (size[1], size[0]))
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(4)]
    for i in range(frames):
        writer.write(noise[i % 4])
    writer.release()
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(f"*{TMP_TAG}*"))


@pytest.fixture
def bundle(tmp_path):
    return make_threshold_bundle(tmp_path / "b", {"fp32": 127.0})


# -- leftovers of killed runs -------------------------------------------------------------------------------------

def test_stale_temporaries_of_dead_processes_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "out.avi"
    dead, alive = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".out.avi.{TMP_TAG}-{dead}-abc.avi"
    stale_dir = tmp_path / f".out.avi.{TMP_TAG}-{dead}-xyz"
    live = tmp_path / f".out.avi.{TMP_TAG}-{alive}-def.avi"
    other = tmp_path / f".other.avi.{TMP_TAG}-{dead}-abc.avi"
    users = tmp_path / ".out.avi.backup"
    stale_file.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "model.onnx").write_bytes(b"x")
    for path in (live, other, users):
        path.write_bytes(b"keep")
    removed = clean_stale_temps(target)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert live.exists() and other.exists() and users.exists()


def test_a_run_removes_the_temporary_video_a_killed_run_left(tmp_path, bundle, capsys):
    stale = tmp_path / f".out.avi.{TMP_TAG}-{_dead_pid()}-q1w2e3.avi"
    stale.write_bytes(b"half a video")
    source = _video(tmp_path / "in.avi", 3, size=(8, 12))
    outcome = run(capsys, "run", bundle, "--source", source, "--sink", tmp_path / "out.avi")
    assert outcome.code == 0, outcome.stderr
    assert not stale.exists() and (tmp_path / "out.avi").is_file()


def test_a_report_removes_the_staging_folder_a_killed_run_left(tmp_path, bundle, capsys):
    stale = tmp_path / f".r.{TMP_TAG}-{_dead_pid()}-a1b2c3"
    (stale / "samples").mkdir(parents=True)
    outcome = run(capsys, "bench", bundle, "--iters", "1", "--warmup", "0", "--report", tmp_path / "r")
    assert outcome.code == 0, outcome.stderr
    assert not stale.exists() and (tmp_path / "r" / "report.json").is_file()


def _sigterm_when(cmd: list[str], ready, timeout: float = 120) -> subprocess.CompletedProcess:
    """Start ``edgeseg CMD``, send SIGTERM once ``ready()`` holds, and return how it ended."""
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
        assert time.monotonic() < deadline, "never got ready"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_sigterm_during_export_leaves_no_staging_folder(tmp_path):
    for attempt in range(2):
        root = tmp_path / f"attempt{attempt}"
        root.mkdir()
        out = root / "bundle"
        done = _sigterm_when(["export", "--model", "lednet", "--num-classes", "2", "--input-size", "32x64",
                              "--out", str(out)], lambda folder=root: bool(_leftovers(folder)))
        if done.returncode != -signal.SIGSEGV:
            break
        # A known, unresolved defect: about one SIGTERM in ten lands while torch's exporter is in native code and
        # the process dies of SIGSEGV before Python can clean up (its staging folder is then removed by the next
        # command, as any dead process's is). It is retried once, in a fresh folder, so that it does not hide the
        # promise under test.
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "edgeseg: terminated"
    assert "Traceback" not in done.stderr
    assert not out.exists() and _leftovers(root) == []


def test_sigterm_during_run_keeps_a_complete_video_like_ctrl_c(tmp_path, bundle):
    from edgeseg.runtime.sinks import count_video_frames

    source = _video(tmp_path / "in.avi", 6000)
    sink = tmp_path / "out.avi"
    done = _sigterm_when(["run", str(bundle), "--source", str(source), "--sink", str(sink)],
                         lambda: _written(tmp_path, f".out.avi.{TMP_TAG}*", 64 * 1024))
    assert done.returncode == 0, done.stderr  # a stream stopped by a signal is a normal end, as with Ctrl-C
    assert "stopped by a signal" in done.stdout
    assert _leftovers(tmp_path) == []
    assert 0 < count_video_frames(sink) < 6000  # closed complete, as Ctrl-C does
    assert oct(sink.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _written(folder: Path, pattern: str, size: int) -> bool:
    """Whether a file matching ``pattern`` in ``folder`` has grown past ``size`` bytes (some frames written)."""
    for path in folder.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > size:
                return True
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- full and read-only file systems ------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_video_sink_and_keeps_nothing(tmp_path, bundle, small_disk, capsys):
    source = _video(tmp_path / "in.avi", 300)
    assert_refused(capsys, small_disk, "run", bundle, "--source", source, "--sink", small_disk / "out.avi",
                   match="disk full|No space", max_lines=2)
    assert list(small_disk.iterdir()) == []


def test_a_full_disk_fails_the_labels_sink_with_one_line(tmp_path, bundle, small_disk, capsys):
    source = _video(tmp_path / "in.avi", 2000, size=(8, 12))
    (small_disk / "filler").write_bytes(b"\0" * (240 * 1024))
    outcome = run(capsys, "run", bundle, "--source", source, "--sink", f"labels:{small_disk / 'labels'}")
    assert outcome.code == 1 and outcome.lines[-1].startswith("edgeseg: error: cannot write"), outcome.stderr
    assert "internal error" not in outcome.stderr and _leftovers(small_disk) == []


def test_a_read_only_disk_is_one_line(tmp_path, bundle, small_disk, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert_refused(capsys, small_disk, "bench", bundle, "--iters", "1", "--warmup", "0", "--report",
                   small_disk / "r", match="Read-only")


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), OSError(30, "Read-only file system")])
def test_an_os_error_while_writing_is_one_line_naming_the_path(tmp_path, error):
    target = tmp_path / "model.onnx"
    with pytest.raises(EdgesegError, match=f"cannot write {target}: {error.strerror}"), atomic_path(target):
        raise error
    assert list(tmp_path.iterdir()) == []


# -- calibrate: the bundle changes whole, or not at all -----------------------------------------------------------

def _calibrate_args(tmp_path: Path, bundle: Path) -> list:
    spec, _ = make_threshold_data(tmp_path / "data", count=2)
    return ["calibrate", bundle, "--calib-data", spec, "--no-fp16"]


@pytest.mark.parametrize("failure, code", [(KeyboardInterrupt, 130), (EdgesegError("gate broke"), 1)])
def test_an_interrupted_calibration_leaves_the_bundle_as_it_was(tmp_path, bundle, capsys, monkeypatch, failure, code):
    import edgeseg.calibration.pipeline as pipeline

    def half_done(root, options):
        (Path(root) / "model.int8.onnx").write_bytes(b"half")
        (Path(root) / "calibration.json").unlink(missing_ok=True)
        (Path(root) / "manifest.json").write_text("{}")
        raise failure

    monkeypatch.setattr(pipeline, "calibrate_bundle", half_done)
    args = _calibrate_args(tmp_path, bundle)
    before = snapshot(tmp_path)
    outcome = run(capsys, *args)
    assert outcome.code == code
    assert snapshot(tmp_path) == before and _leftovers(tmp_path) == []


def test_a_finished_calibration_replaces_the_bundle_and_keeps_the_users_files(tmp_path, bundle, capsys, monkeypatch):
    import edgeseg.calibration.pipeline as pipeline
    from edgeseg.runtime.bundle import open_bundle

    def add_variant(root, options):
        staged = open_bundle(root)
        (Path(root) / "model.int8.onnx").write_bytes((Path(root) / "model.onnx").read_bytes())
        staged.add_file("model.int8.onnx", "onnx", precision="int8")
        staged.save()

    (bundle / "notes.txt").write_text("mine")
    monkeypatch.setattr(pipeline, "calibrate_bundle", add_variant)
    outcome = run(capsys, *_calibrate_args(tmp_path, bundle))
    assert outcome.code == 0, outcome.stderr
    assert "model.int8.onnx" in json.loads((bundle / "manifest.json").read_text())["files"]
    assert (bundle / "notes.txt").read_text() == "mine" and _leftovers(tmp_path) == []


# -- the shared rules, directly -----------------------------------------------------------------------------------

def test_only_an_edgeseg_folder_of_the_same_kind_listing_everything_may_be_replaced(tmp_path, bundle):
    check_replaceable(bundle, BUNDLE_KIND)
    check_replaceable(tmp_path / "new", BUNDLE_KIND)
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", BUNDLE_KIND)
    report_kind = FolderKind("manifest.json", "edgeseg-bench-report", "edgeseg bench report", lambda d: ())
    with pytest.raises(EdgesegError, match="not an edgeseg bench report"):
        check_replaceable(bundle, report_kind)  # a bundle's manifest is not a report's marker
    (bundle / "extra.onnx").write_bytes(b"x")
    with pytest.raises(EdgesegError, match="extra.onnx"):
        check_replaceable(bundle, BUNDLE_KIND)


@pytest.mark.parametrize("name", ["a/../../b", "/abs", "..", "x\x00y", 7, None, "C:\\..\\x"])
def test_untrusted_names_stay_inside_their_folder(tmp_path, name):
    with pytest.raises(EdgesegError):
        inside(tmp_path, name, "manifest.json")


def test_trusted_names_resolve_inside(tmp_path):
    assert inside(tmp_path, "predictions/r1/0.png", "report.json") == tmp_path / "predictions" / "r1" / "0.png"
