"""The model ``edgeseg serve`` puts behind Triton: a Python-backend model that runs a bundle's runner.

Triton's Python backend starts one stub process per model instance; the stub imports the ``model.py`` that
:mod:`edgeseg.runtime.serve` writes into its model repository, which re-exports :class:`TritonPythonModel` from
here. ``initialize`` loads the same runner ``edgeseg run`` and ``edgeseg bench`` use
(:func:`edgeseg.runtime.load.load_runner`) and checks its tensors against the model configuration; ``execute``
takes the requests Triton's dynamic batcher gathered, stacks them into one batch and runs it through the runner in
pieces of the runner's own batch size (:func:`infer_in_batches`), then hands each request its own rows.

Inputs leave the stub by DLPack (``np.from_dlpack``); outputs enter it by :func:`output_tensor`. The stub of
Triton 2.51 (the one nvidia-pytriton ships) reads NumPy arrays through a pybind11 built for NumPy 1's
array-descriptor layout. Under NumPy 2 (seen with 2.4) its ``as_numpy()`` returns an array of zeros and an output
made with ``pb_utils.Tensor(name, array)`` reaches the client empty (``output tensor shape does not match size of
output``), while DLPack, which carries the buffer, shape and dtype without that descriptor, works. Under NumPy 1
(1.26, what nvidia-pytriton's ``numpy<2`` pin installs) the plain calls work, but ``Tensor.from_dlpack`` of a
NumPy 1 array fails inside the stub (``PyCapsule_GetPointer called with incorrect name``) and the stub stops
answering. So inputs always go by DLPack (right under both), outputs by the call that is right for the NumPy
installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SETTINGS = "serve.json"  # written by edgeseg.runtime.serve next to the model's config.pbtxt
RUNNER_INFO = "runner.json"  # written here once the runner is loaded, read back by the server for its log
ERROR_MARK = "edgeseg-serve: "  # starts every message this model fails with, so the server can pick it out
NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def output_tensor(pb_utils, name: str, array: np.ndarray):
    """``array`` as the stub's output tensor ``name``: by DLPack under NumPy 2, by the plain constructor under
    NumPy 1 (each breaks under the other; see the module's docstring)."""
    array = np.ascontiguousarray(array)
    return pb_utils.Tensor.from_dlpack(name, array) if NUMPY_2 else pb_utils.Tensor(name, array)


def infer_in_batches(runner, feed: dict[str, np.ndarray], batch: int | None,
                     outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``outputs`` of ``runner`` for every row of ``feed`` (arrays sharing their first dimension, N rows).

    ``batch`` is the runner's fixed batch size (None: it takes any batch, and all N rows go in one call). With a
    fixed size the rows go in pieces of ``batch``; a last, short piece is filled up with copies of its last row
    and only its own rows of the result are kept."""
    rows = next(iter(feed.values())).shape[0]
    step = batch or rows
    pieces: list[dict[str, np.ndarray]] = []
    for start in range(0, rows, step):
        piece = {name: array[start:start + step] for name, array in feed.items()}
        count = next(iter(piece.values())).shape[0]
        if batch and count < batch:
            piece = {name: np.concatenate([array, np.repeat(array[-1:], batch - count, axis=0)])
                     for name, array in piece.items()}
        result = runner.infer(piece)
        pieces.append({name: result[name][:count] for name in outputs})
    if len(pieces) == 1:
        return pieces[0]
    return {name: np.concatenate([p[name] for p in pieces]) for name in outputs}


def interpreter_mismatch(expected: str, actual: str) -> str | None:
    """Why the stub's Python cannot run edgeseg (``actual``: its ``sys.version``, compiled into the libpython the
    stub loaded) when edgeseg serve runs under ``expected``, or None when they are the same build."""
    if expected == actual:
        return None
    return (f"Triton's Python backend stub loaded libpython {actual.split()[0]} while edgeseg runs under Python "
            f"{expected.split()[0]} (the stdlib it reads is {expected.split()[0]}'s); run edgeseg serve from a "
            f"Python built with --enable-shared, so the stub can load the same libpython")


def _fail(message: str):
    import triton_python_backend_utils as pb_utils  # only inside Triton's stub

    raise pb_utils.TritonModelException(ERROR_MARK + message)


def _check_tensors(kind: str, want: list[dict], have) -> None:
    """The runner's tensors (``have``: TensorSpecs) must be the configuration's (``want``: name, numpy dtype)."""
    got = {spec.name: np.dtype(spec.dtype).name for spec in have}
    for tensor in want:
        if tensor["name"] not in got:
            _fail(f"the runner has no {kind} {tensor['name']!r} (it has {', '.join(got)})")
        if got[tensor["name"]] != tensor["dtype"]:
            _fail(f"{kind} {tensor['name']!r} is {got[tensor['name']]} in the runner, {tensor['dtype']} in the "
                  f"bundle's manifest")


class TritonPythonModel:
    """Triton's Python-backend model interface (``initialize``, ``execute``, ``finalize``) over one runner."""

    def initialize(self, args: dict) -> None:
        model_dir = Path(args["model_repository"])
        settings = json.loads((model_dir / SETTINGS).read_text())
        mismatch = interpreter_mismatch(settings["python"], sys.version)
        if mismatch:
            _fail(mismatch)
        from edgeseg.errors import EdgesegError
        from edgeseg.runtime.load import load_runner

        try:
            self.runner = load_runner(settings["bundle"], settings["backend"], precision=settings["precision"],
                                      threads=settings["threads"])
            self.runner.__enter__()
        except EdgesegError as exc:
            _fail(str(exc))
        _check_tensors("input", settings["inputs"], self.runner.inputs())
        _check_tensors("output", settings["outputs"], self.runner.outputs())
        self.inputs = tuple(t["name"] for t in settings["inputs"])
        self.outputs = tuple(t["name"] for t in settings["outputs"])
        first = next(s for s in self.runner.inputs() if s.name == self.inputs[0])
        self.batch = first.shape[0] if isinstance(first.shape[0], int) else None
        info = {"backend": self.runner.backend, "runner": self.runner.name, "batch": self.batch,
                "compute": self.runner.compute}
        (model_dir / RUNNER_INFO).write_text(json.dumps(info))

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        feeds = [{name: np.from_dlpack(pb_utils.get_input_tensor_by_name(request, name)) for name in self.inputs}
                 for request in requests]
        counts = [feed[self.inputs[0]].shape[0] for feed in feeds]
        stacked = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.inputs}
        try:
            result = infer_in_batches(self.runner, stacked, self.batch, self.outputs)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error, the server lives on
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for count in counts:
            tensors = [output_tensor(pb_utils, name, result[name][start:start + count]) for name in self.outputs]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += count
        return responses

    def finalize(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.__exit__(None, None, None)
