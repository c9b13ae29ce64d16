"""``edgeseg serve``: a real Triton server (the tritonserver nvidia-pytriton ships) on a tiny bundle, driven with
tritonclient over HTTP and gRPC; its answers are compared with the same runner called here.

One server for the module (started once, SIGTERMed by the last test); refusals run in-process."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import bundle_group

from edgeseg.runtime.triton_model import infer_in_batches, interpreter_mismatch

MISSING = [m for m in ("pytriton", "tritonclient") if importlib.util.find_spec(m) is None]
needs_triton = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed (pip install "
                                                        f"'edgeseg[serve]')")
MODEL = "lednet"
MAX_BATCH = 4


def served(test):
    """A test of the module's server: needs Triton, and runs on the worker that has the bundle."""
    return needs_triton(bundle_group(MODEL)(test))


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Server:
    """``edgeseg serve`` as a subprocess (of this test's Python) on free loopback ports."""

    def __init__(self, bundle: Path, *extra: str) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeseg", "serve", str(bundle), "--port", str(self.http),
             "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics), "--max-batch", str(MAX_BATCH),
             "--threads", "1", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"edgeseg serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.proc.kill()
        raise AssertionError(f"not ready after {timeout} s")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            return r.read().decode()

    def counter(self, name: str) -> float:
        m = re.search(rf'^{name}{{model="{MODEL}",version="1"}} (\S+)$', self.metrics_text(), re.M)
        assert m, f"{name} of {MODEL} missing from /metrics"
        return float(m.group(1))

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def bundle(registry_bundle):
    return registry_bundle(MODEL).bundle


@pytest.fixture(scope="module")
def server(bundle):
    s = Server(bundle.root, "--max-queue-delay-us", "200000", "--json")  # concurrent requests meet in one batch
    try:
        s.wait_ready()
        s.processes = descendants(s.proc.pid)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def frames(bundle):
    h, w = bundle.feed_size
    return np.random.default_rng(3).integers(0, 256, (12, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def local(bundle, frames):
    """Each frame's labels and logits from the runner edgeseg serve loads (same bundle, backend and threads).
    The tiny model may answer one class everywhere, so the logits (different for every frame) are compared too:
    a frame answered with another's result cannot pass."""
    from edgeseg.runtime.load import load_runner

    with load_runner(bundle.root, threads=1) as runner:
        results = [runner.infer({"image": f[None]}) for f in frames]
    out = {name: np.concatenate([r[name] for r in results]) for name in ("labels", "logits")}
    assert all(not np.array_equal(out["logits"][0], other) for other in out["logits"][1:])
    return out


@served
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_labels_match_the_local_runner(server, frames, local, protocol):
    """A request of 3 frames (the runner's batch is 1: three runner calls) answers each frame's labels, uint8."""
    if protocol == "http":
        import tritonclient.http as client

        c = client.InferenceServerClient(f"127.0.0.1:{server.http}")
    else:
        import tritonclient.grpc as client

        c = client.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    x = frames[:3]
    feed = client.InferInput("image", list(x.shape), "UINT8")
    feed.set_data_from_numpy(x)
    result = c.infer(MODEL, [feed])
    labels = result.as_numpy("labels")
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, local["labels"][:3])
    np.testing.assert_array_equal(result.as_numpy("logits"), local["logits"][:3])


@served
def test_model_is_the_bundles(server, bundle):
    """Model name, tensor names and dtypes are the bundle's; batches of up to --max-batch rows."""
    import tritonclient.http as client

    c = client.InferenceServerClient(f"127.0.0.1:{server.http}")
    meta = c.get_model_metadata(MODEL)
    h, w = bundle.feed_size
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("image", "UINT8", [-1, h, w, 3])]
    assert {t["name"]: t["datatype"] for t in meta["outputs"]} == {"labels": "UINT8", "logits": "FP32"}
    assert c.get_model_config(MODEL)["max_batch_size"] == MAX_BATCH
    big = client.InferInput("image", [MAX_BATCH + 1, h, w, 3], "UINT8")
    big.set_data_from_numpy(np.zeros((MAX_BATCH + 1, h, w, 3), np.uint8))
    with pytest.raises(Exception, match="batch"):
        c.infer(MODEL, [big])


@served
def test_concurrent_clients_are_batched(server, frames, local):
    """8 clients at once: each gets its own frame's labels, and Triton ran fewer batches than requests."""
    import tritonclient.http as client

    count0, exec0 = server.counter("nv_inference_count"), server.counter("nv_inference_exec_count")
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def one(k: int) -> None:
        try:
            c = client.InferenceServerClient(f"127.0.0.1:{server.http}")
            feed = client.InferInput("image", [1, *frames.shape[1:]], "UINT8")
            feed.set_data_from_numpy(frames[k:k + 1])
            start.wait()
            result = c.infer(MODEL, [feed])
            answers[k] = (result.as_numpy("labels")[0], result.as_numpy("logits")[0])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for k in range(8):
        np.testing.assert_array_equal(answers[k][0], local["labels"][k])
        np.testing.assert_array_equal(answers[k][1], local["logits"][k])
    deadline = time.monotonic() + 15
    while True:
        count = server.counter("nv_inference_count") - count0
        executions = server.counter("nv_inference_exec_count") - exec0
        if count >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert count == 8, "Triton's statistics lag the responses: waited 15 s for all 8 requests to be counted"
    assert executions < count, f"{executions} batches for {count} requests: nothing was batched"


@served
def test_health_and_metrics(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http}/v2/health/ready", timeout=5) as r:
        assert r.status == 200
    assert f'nv_inference_request_success{{model="{MODEL}",version="1"}}' in server.metrics_text()


@served
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["changed_file", "manifest_disagrees"])
def test_model_that_cannot_load_is_one_line(bundle, tmp_path, damage):
    """The model fails inside Triton's stub (a model file changed after export; a manifest whose tensors are not
    the graph's): exit 1, the stub's reason in one line, no server left behind."""
    copy = tmp_path / "b"
    shutil.copytree(bundle.root, copy)
    if damage == "changed_file":
        with open(copy / "model.onnx", "ab") as f:
            f.write(b"\0")
        reason = "sha256"
    else:
        manifest = json.loads((copy / "manifest.json").read_text())
        for spec in manifest["outputs"]:
            if spec["name"] == "logits":
                spec["dtype"] = "float16"
        (copy / "manifest.json").write_text(json.dumps(manifest))
        reason = "output 'logits' is float32 in the runner, float16 in the bundle's manifest"
    s = Server(copy)
    try:
        code = s.proc.wait(timeout=180)
    finally:
        _, err = s.stop()
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 1, err
    assert len(errors) == 1 and errors[0].startswith("edgeseg: error: the model did not load: "), err
    assert reason in errors[0] and "Traceback" not in err


@served
def test_sigterm_stops_everything(server):
    """Last of the module: SIGTERM ends edgeseg serve (143) once Triton and its stub have ended."""
    assert server.processes, "tritonserver should run below edgeseg serve"
    code, err = server.stop()
    assert code in (0, 143), err
    assert "Traceback" not in err
    assert not [p for p in server.processes if alive(p)], "Triton or its stub still ran when edgeseg serve ended"
    endpoints = json.loads(server.out)  # --json: stdout holds the endpoints and nothing else
    assert endpoints["model"] == MODEL and endpoints["http"] == f"http://127.0.0.1:{server.http}/v2/models/{MODEL}/infer"


@served
def test_port_in_use_is_one_line(cli_here, bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        grpc, metrics = free_ports(2)
        r = cli_here("serve", str(bundle.root), "--port", str(port), "--grpc-port", str(grpc),
                     "--metrics-port", str(metrics))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"edgeseg: error: port {port} (--port) is already in use on 127.0.0.1: "
                                             f"stop what listens there or choose another port"]


@pytest.mark.parametrize("make", ["missing", "not_a_bundle"])
def test_bad_bundle_is_one_line(cli_here, tmp_path, make):
    target = tmp_path / "nothing" if make == "missing" else tmp_path
    r = cli_here("serve", str(target))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeseg: error: "), r.stderr


class FakeRunner:
    """A runner of fixed batch 2: labels = each row's first pixel, recorded calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def infer(self, feed):
        image = feed["image"]
        assert image.shape[0] == 2, "a fixed-batch runner takes exactly its batch"
        self.calls.append(image.shape[0])
        return {"labels": image[:, :1, :1, 0].copy(), "logits": image.astype(np.float32)}


def test_a_batch_goes_through_the_runner_in_pieces_of_its_size():
    rows = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    runner = FakeRunner()
    out = infer_in_batches(runner, {"image": rows}, 2, ("labels",))
    assert runner.calls == [2, 2, 2]
    assert list(out) == ["labels"]
    np.testing.assert_array_equal(out["labels"][:, 0, 0], np.arange(5))


def test_a_dynamic_runner_takes_the_batch_in_one_call():
    calls = []

    class Dynamic:
        def infer(self, feed):
            calls.append(feed["image"].shape[0])
            return {"labels": feed["image"][:, 0]}

    out = infer_in_batches(Dynamic(), {"image": np.arange(7 * 2, dtype=np.uint8).reshape(7, 2)}, None, ("labels",))
    assert calls == [7]
    np.testing.assert_array_equal(out["labels"], np.arange(0, 14, 2))


def test_another_python_in_the_stub_is_refused():
    here = "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]"
    assert interpreter_mismatch(here, here) is None
    reason = interpreter_mismatch(here, "3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]")
    assert "libpython 3.11.2" in reason and "3.11.7" in reason
