"""The torch CUDA runner: refusals everywhere, and on a GPU the same labels as torch on the CPU, on K streams,
with and without CUDA graphs, inside the stream pipeline."""

import threading

import numpy as np
import pytest
import torch
from bench_fixtures import CLASSES, PALETTE

from edgeseg.errors import EdgesegError
from edgeseg.models import create, save_checkpoint
from edgeseg.runtime.bundle import Bundle
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.manifest import InputSpec, Manifest, ModelInfo
from edgeseg.runtime.torch_cuda_runner import TorchCudaRunner, cuda_unavailable

H, W = 32, 64


def _cuda_reason() -> str | None:
    return cuda_unavailable(torch)


def needs_gpu(test):
    """Marked ``cuda`` (selected by ``pytest -m cuda``), and skipped where torch has no GPU."""
    skip = pytest.mark.skipif(_cuda_reason() is not None, reason=f"needs torch on CUDA: {_cuda_reason()}")
    return pytest.mark.cuda(skip(test))


@pytest.fixture(scope="module")
def checkpoint_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_bundle")
    torch.manual_seed(0)
    model = create("lednet", num_classes=len(CLASSES))
    save_checkpoint(root / "model.pt", model, name="lednet")
    bundle = Bundle(root, Manifest(ModelInfo("lednet", list(CLASSES), palette=[list(c) for c in PALETTE]),
                                   InputSpec((H, W))))
    bundle.add_file("model.pt", "checkpoint", precision="fp32")
    bundle.save()
    return root


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8) for _ in range(count)]


def test_loader_picks_the_cuda_runner_and_checks_precision(checkpoint_bundle):
    runner = load_runner(checkpoint_bundle, "torch", precision="fp16", device="cuda", streams=3, cuda_graph=True)
    assert isinstance(runner, TorchCudaRunner) and runner.slots == 3 and runner.cuda_graph
    with pytest.raises(EdgesegError, match="fp32 or fp16 on a GPU"):
        load_runner(checkpoint_bundle, "torch", precision="int8", device="cuda")
    with pytest.raises(EdgesegError, match="runs fp32 on a CPU"):
        load_runner(checkpoint_bundle, "torch", precision="fp16", device="cpu")


@pytest.mark.skipif(_cuda_reason() is None, reason="this machine has a GPU")
def test_run_on_cuda_without_a_gpu_is_one_line(checkpoint_bundle, tmp_path, cli):
    folder = tmp_path / "frames"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(_frames(1)[0][0]).save(folder / "0.png")
    r = cli("run", str(checkpoint_bundle), "--source", str(folder), "--backend", "torch", "--device", "cuda")
    assert r.returncode == 1 and r.stderr.startswith("edgeseg: error: the torch CUDA backend cannot run")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@needs_gpu
@pytest.mark.parametrize("precision,cuda_graph", [("fp32", False), ("fp32", True), ("fp16", False),
                                                  ("fp16", True)])
def test_cuda_labels_match_the_cpu(checkpoint_bundle, precision, cuda_graph):
    frames = _frames(4)
    with load_runner(checkpoint_bundle, "torch") as cpu:
        expected = [cpu.infer({"image": f})["labels"] for f in frames]
    with load_runner(checkpoint_bundle, "torch", precision=precision, device="cuda", cuda_graph=cuda_graph) as gpu:
        assert gpu.outputs()[0].dtype == "uint8"
        for frame, want in zip(frames, expected):
            got = gpu.infer({"image": frame})["labels"]
            agree = float((got == want).mean())
            assert agree > (0.999 if precision == "fp32" else 0.97), agree
            assert set(gpu.last_stages_ms) == {"h2d", "compute", "d2h"}
            assert gpu.last_latency_ms >= gpu.last_stages_ms["compute"] > 0
        assert gpu.device_memory_mib() > 0


@needs_gpu
def test_streams_in_flight_return_each_callers_own_frame(checkpoint_bundle):
    frames = _frames(12)
    with load_runner(checkpoint_bundle, "torch", device="cuda") as single:
        expected = [single.infer({"image": f})["labels"] for f in frames]
    results: dict[int, np.ndarray] = {}

    with load_runner(checkpoint_bundle, "torch", device="cuda", streams=3, cuda_graph=True) as runner:
        def work(indices):
            for i in indices:
                results[i] = runner.infer({"image": frames[i]})["labels"]

        threads = [threading.Thread(target=work, args=(range(k, 12, 3),)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, want in enumerate(expected):
        assert float((results[i] == want).mean()) > 0.999, i


@needs_gpu
def test_pipeline_on_cuda_streams_keeps_every_frame(checkpoint_bundle):
    from edgeseg.runtime.pipeline import StreamPipeline
    from edgeseg.runtime.sinks import FrameSink
    from edgeseg.runtime.sources import Frame, FrameSource

    class Frames(FrameSource):
        def __iter__(self):
            for i, f in enumerate(_frames(20)):
                yield Frame(i, f[0], str(i))

    class Collect(FrameSink):
        def __init__(self):
            super().__init__("collect", PALETTE)
            self.seen = []

        def _write(self, frame, labels):
            self.seen.append(frame.index)

    sink = Collect()
    with load_runner(checkpoint_bundle, "torch", precision="fp16", device="cuda", streams=2) as runner:
        summary = StreamPipeline(runner, Frames("generated"), sink, streams=2).run()
    assert sink.seen == list(range(20)) and summary["frames_out"] == 20
    assert {"h2d", "inference", "d2h"} <= set(summary["stages_ms"])


@pytest.mark.parametrize("args,message", [(["--device", "gpu0"], "expected auto, cpu, cuda or cuda:N"),
                                          (["--device", "cuda", "--backend", "onnxruntime"], "add --backend torch")])
def test_run_device_errors_are_one_line(checkpoint_bundle, tmp_path, cli, args, message):
    r = cli("run", str(checkpoint_bundle), "--source", str(tmp_path), *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_side_stream_waits_for_the_stream_that_moved_the_weights():
    """Warm-up and capture run on the slot's side stream; it must first wait on the stream the weights were
    moved on (checked with a stand-in for torch's CUDA API, so it runs without a GPU)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    events = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            events.append(("wait", self.name, other.name))

        def synchronize(self):
            pass

    fake_cuda = SimpleNamespace(current_stream=lambda device: Stream("current"), stream=lambda s: nullcontext(),
                                CUDAGraph=lambda: None, graph=lambda g, stream: nullcontext())
    fake_torch = SimpleNamespace(cuda=fake_cuda, inference_mode=nullcontext, empty=lambda *a, **k: torch.empty(a[0]),
                                 uint8=torch.uint8)
    runner = TorchCudaRunner("model.pt", (H, W))
    runner.torch, runner.device = fake_torch, "cuda"
    runner.model = lambda x: events.append(("forward",)) or torch.zeros(1, H, W)
    slot = SimpleNamespace(stream=Stream("side"), device_in=torch.zeros(1), out=(), graph=None)
    runner._prepare(slot)
    assert events[0] == ("wait", "side", "current") and ("forward",) in events
