"""Atomic file writes: every artifact goes to a temporary name in the same folder and is renamed into place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeseg.errors import EdgesegError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dir_readable(path: str | os.PathLike) -> None:
    """``mkdtemp`` makes 0700 folders; give a published folder the usual permissions."""
    os.chmod(path, 0o777 & ~_umask())


def make_file_readable(path: str | os.PathLike) -> None:
    os.chmod(path, 0o666 & ~_umask())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` that replaces ``out`` on success and vanishes on failure.

    An existing ``out`` is replaced only when it is empty or holds ``marker`` (the file that shows it was
    written by the same kind of command: ``manifest.json`` for bundles, ``report.json`` for reports)."""
    out = Path(out)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise EdgesegError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
    try:
        yield tmp
        make_dir_readable(tmp)
        if out.exists():
            if not out.is_dir() or (not (out / marker).is_file() and any(out.iterdir())):
                raise EdgesegError(f"{out} exists and has no {marker}; refusing to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_json_document(path: str | os.PathLike, fmt: str, version: int, what: str) -> dict:
    """A JSON file tagged ``{"format": fmt, "format_version": n}``: parsed and checked, or a clear error."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgesegError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise EdgesegError(f"{path} is not an {what}")
    if int(document.get("format_version", 0)) > version:
        raise EdgesegError(f"{path} was written by a newer edgeseg")
    return document
