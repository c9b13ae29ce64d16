"""Safe file handling: atomic writes, staged folders, what may be replaced, and untrusted relative paths.

Every artifact goes to a temporary name in the same folder and is renamed into place. Temporary names carry
the writing process's id (``.NAME.edgeseg-tmp-PID-XXXX``), so leftovers of a run that was killed (SIGKILL,
power loss) are recognised and removed by the next run writing the same target, and nothing else is touched.
A folder is replaced only when its marker file is an edgeseg document of the same kind and every entry in it
is one that document lists: edgeseg never deletes what it did not write.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import EdgesegError

log = logging.getLogger(__name__)

TMP_TAG = "edgeseg-tmp"
_TMP_PID = re.compile(rf"\.{TMP_TAG}-(\d+)-")


def temp_path(target: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name beside ``target`` (not created): the caller creates it inside the ``try`` whose
    ``finally`` removes it, so an interruption at any point (Ctrl-C, SIGTERM) leaves nothing behind."""
    target = Path(target)
    return target.parent / f".{target.name}.{TMP_TAG}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders that an earlier, killed edgeseg process left beside ``target``."""
    target = Path(target)
    removed = []
    for name in glob.glob(f".{glob.escape(target.name)}.{TMP_TAG}-*", root_dir=target.parent):
        m = _TMP_PID.search(name[len(target.name) + 1:])
        if m is None or _pid_alive(int(m.group(1))):
            continue
        leftover = target.parent / name
        with contextlib.suppress(OSError):
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()
            removed.append(leftover)
            log.info("removed %s, left by an interrupted edgeseg run", leftover)
    return removed


# File-system failures that are the machine's or the user's, never a bug: one line naming the path.
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
                         errno.ENOTDIR, errno.ENAMETOOLONG, errno.EFBIG, errno.EIO, errno.ENOENT, errno.EEXIST,
                         errno.ENOTEMPTY, errno.EXDEV, errno.EMFILE, errno.ENFILE})


def os_error(exc: OSError, path: str | os.PathLike | None = None, verb: str = "cannot write") -> EdgesegError:
    """A file-system failure (full disk, read-only, no permission) as one user-facing line naming the path."""
    where = path if path is not None else (exc.filename or "a file")
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
    return EdgesegError(f"{verb} {where}: {reason}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_file_readable(path: str | os.PathLike) -> None:
    """``mkstemp`` makes 0600 files; give a published file the usual permissions (the umask's)."""
    os.chmod(path, 0o666 & ~_umask())


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse, before any work, a folder that cannot be written (read-only file system, no permission): the
    nearest existing folder on the way to it must be writable."""
    path = Path(folder)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        reason = "Read-only file system" if _read_only(existing) else "Permission denied"
        raise EdgesegError(f"cannot write {folder}: {reason}")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_file_target(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output file that is a folder, or that is (or is inside) one of ``inputs``."""
    target = Path(path)
    if target.is_dir():
        raise EdgesegError(f"{target} is a folder; give a file name")
    refuse_input_overlap(target, inputs)
    return target


def refuse_input_overlap(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse writing ``out`` when it is an input, lies inside one, or holds one: edgeseg never writes over its
    own input."""
    resolved = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).resolve()
        if resolved == src or src in resolved.parents or resolved in src.parents:
            raise EdgesegError(f"{out} would write over the input {given}; choose another output")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error delete it.

    ``suffix`` is the temporary file's ending (writers that choose a format by it, such as OpenCV's video
    writer, pass the target's)."""
    target = Path(path)
    if target.is_dir():
        raise EdgesegError(f"cannot write {target}: it is a folder")
    tmp_path = temp_path(target, suffix)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(target)
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        raise os_error(exc, target) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder edgeseg writes whole (a bundle, a report): the marker document that proves edgeseg wrote
    it, its ``format`` tag, and the entries that document accounts for (``owned(document)``)."""

    marker: str
    fmt: str
    what: str
    owned: Callable[[dict], Iterable[str]]

    def read_marker(self, folder: Path) -> dict | None:
        try:
            document = json.loads((folder / self.marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) and document.get("format") == self.fmt else None


def check_replaceable(out: str | os.PathLike, kind: FolderKind) -> None:
    """Refuse, before any work, an output folder edgeseg may not replace: a file, or a non-empty folder that is
    not an edgeseg ``kind`` folder holding only what its marker lists."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise EdgesegError(f"{out} exists and is not a folder; refusing to replace it")
    check_writable(out.resolve().parent)
    if not out.exists():
        return
    entries = sorted(p.name for p in out.iterdir() if TMP_TAG not in p.name)
    if not entries:
        return
    document = kind.read_marker(out)
    if document is None:
        raise EdgesegError(f"{out} is not empty and is not an {kind.what} (no valid {kind.marker}); refusing to "
                           f"replace it: choose a new folder")
    try:
        owned = {str(name) for name in kind.owned(document)} | {kind.marker}
    except (TypeError, AttributeError):
        owned = {kind.marker}
    foreign = [name for name in entries if name not in owned]
    if foreign:
        raise EdgesegError(f"{out} holds {foreign[0]!r}, which edgeseg did not write; refusing to replace the "
                           f"folder: move it or choose a new folder")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, kind: FolderKind) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` that replaces ``out`` on success and vanishes on failure.

    An existing ``out`` is replaced only when :func:`check_replaceable` allows it (checked before and after the
    work); the old folder is removed only after the new one is in place."""
    out = Path(out)
    check_replaceable(out, kind)
    parent = out.resolve().parent
    tmp = temp_path(parent / out.name)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out)
        tmp.mkdir()
        yield tmp
        check_replaceable(out, kind)
        _swap_in(tmp, out, parent)
    except OSError as exc:
        raise os_error(exc, out) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path, parent: Path) -> None:
    """Put ``tmp`` where ``out`` is; the old ``out`` is removed only once the new one is in place."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = temp_path(parent / out.name)
    old.mkdir()
    os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old / out.name, out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_update(folder: str | os.PathLike, kind: FolderKind) -> Iterator[Path]:
    """Yield a linked copy of the edgeseg ``kind`` folder ``folder`` to change; it replaces ``folder`` whole on
    success and vanishes on failure or interruption, so the original is never seen half-changed. Entries the
    marker does not list are carried over in the copy."""
    folder = Path(folder)
    if kind.read_marker(folder) is None:
        raise EdgesegError(f"{folder} is not an {kind.what} (no valid {kind.marker})")
    parent = folder.resolve().parent
    tmp = temp_path(parent / folder.name)
    try:
        clean_stale_temps(folder)
        tmp.mkdir()
        copy_tree(folder, tmp)
        yield tmp
        if kind.read_marker(folder) is None:
            raise EdgesegError(f"{folder} changed while edgeseg was working on it; nothing was replaced")
        _swap_in(tmp, folder, parent)
    except OSError as exc:
        raise os_error(exc, folder) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_tree(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy a folder, file by file (not hard links: a tool that writes a file in place would change the
    original through a link)."""
    try:
        shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise EdgesegError(f"cannot copy {src}: {exc}") from exc


def inside(root: str | os.PathLike, name: object, what: str) -> Path:
    """``root/name`` for an untrusted relative ``name`` (from a manifest or report): relative, without ``..``,
    and inside ``root`` after resolving symlinks; anything else is refused with one line naming ``what``."""
    root = Path(root)
    if not isinstance(name, str) or not name or "\x00" in name:
        raise EdgesegError(f"{what}: {name!r} is not a file name")
    rel = Path(name)
    if rel.is_absolute() or name.startswith(("/", "\\")) or ".." in rel.parts or ".." in name.split("\\"):
        raise EdgesegError(f"{what}: {name!r} points outside {root}; refusing it")
    path = root / rel
    base = root.resolve()
    if base not in path.resolve().parents:
        raise EdgesegError(f"{what}: {name!r} resolves outside {root}; refusing it")
    return path


def read_json_document(path: str | os.PathLike, fmt: str, version: int, what: str) -> dict:
    """A JSON file tagged ``{"format": fmt, "format_version": n}``: parsed and checked, or a clear error."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgesegError(f"{path} is unreadable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise EdgesegError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise EdgesegError(f"{path} is not an {what}")
    try:
        newer = int(document.get("format_version", 0)) > version
    except (TypeError, ValueError):
        raise EdgesegError(f"{path}: format_version is not a number") from None
    if newer:
        raise EdgesegError(f"{path} was written by a newer edgeseg")
    return document
