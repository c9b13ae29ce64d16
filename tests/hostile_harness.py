"""The contract every hostile-input test checks: exit code 1, one ``edgeseg: error:`` line on stderr (no traceback,
no "internal error"), and a file tree that is what it was, plus only the artifact the command was meant to write.

The CLI runs in-process (``edgeseg.cli.main.main``), so a hundred cases cost seconds, not a Python start-up each.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from edgeseg.cli.main import main

ERROR_LINE = re.compile(r"^edgeseg( [a-z-]+){0,2}: error: ")  # ours, or argparse's (which names the (sub)command)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones included): path → sha256 and mode, or ``dir``."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = f"link:{path.readlink()}"
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {oct(path.stat().st_mode & 0o777)}"
    return state


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run(capsys, *args: str) -> Outcome:
    """Run ``edgeseg ARGS`` in this process; returns its exit code and what it printed."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse exits (as the installed command would)
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


def assert_refused(capsys, root: Path, *args: str, match: str | None = None, max_lines: int = 1,
                   allow: tuple[str, ...] = ()) -> Outcome:
    """``edgeseg ARGS`` must fail with one clear line (matching ``match``) and leave ``root`` as it was, except
    for the paths in ``allow`` (relative to ``root``, e.g. a run folder that a later refusal may leave)."""
    before = snapshot(root)
    outcome = run(capsys, *args)
    assert outcome.code == 1, f"exit {outcome.code}: {outcome.stderr}"
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, outcome.stderr
    errors = [line for line in outcome.lines if ERROR_LINE.match(line)]
    assert len(errors) == 1 and outcome.lines[-1] == errors[0], outcome.stderr
    assert len(outcome.lines) <= max_lines, outcome.stderr
    if match is not None:
        assert re.search(match, errors[0]), errors[0]
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    unexpected = {k for k in changed if not any(k == a or k.startswith(a + "/") for a in allow)}
    assert not unexpected, f"the command changed {sorted(unexpected)}"
    return outcome
