"""Keep stdout for results: what other libraries print there (ONNX Runtime's and onnxsim's C++ code, the torch
exporter's Python prints) goes to stderr with the logs and progress.

Two levels: :func:`native_stdout_to_stderr` sends native writes to file descriptor 1 to stderr for a whole
command while Python's ``sys.stdout`` still reaches the real stdout (the CLI wraps every command in it);
:func:`stdout_to_stderr` also sends Python's ``print`` there, around one call into a library that prints.
Pure Python.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
from collections.abc import Iterator


def _fd(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (pytest's capsys, StringIO)
        return None


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so that what native code printed lands before descriptors move."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Inside: writes to descriptor 1 by native code go to stderr; ``sys.stdout`` is a new stream on the real
    stdout, so the caller's ``print`` still reaches it. Nothing changes when stdout or stderr has no descriptor
    (a test's captured streams) or stdout is not descriptor 1."""
    out_fd, err_fd = _fd(sys.stdout), _fd(sys.stderr)
    if out_fd != 1 or err_fd is None:
        yield
        return
    original = sys.stdout
    original.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    results = io.TextIOWrapper(io.FileIO(saved, "w", closefd=False), encoding=original.encoding,
                               errors=original.errors, line_buffering=True)
    os.dup2(err_fd, 1)
    sys.stdout = results
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            results.flush()
        sys.stdout = original
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Inside: Python's ``print`` and native writes to descriptor 1 both go to stderr (around a library call
    that prints progress or advice)."""
    out_fd, err_fd = _fd(sys.__stdout__), _fd(sys.__stderr__)
    sys.stdout.flush()
    saved = None
    if out_fd == 1 and err_fd is not None:
        _flush_c_stdio()
        saved = os.dup(1)
        os.dup2(err_fd, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
