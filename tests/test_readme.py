"""The README stays short and true: its links resolve, and every command and flag it shows exists under its
current name (not a retired spelling kept as a hidden alias)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from edgeseg.cli.common import CANONICAL
from edgeseg.cli.main import SUBCOMMANDS, _build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
RETIRED = {old: flag for flag, olds in CANONICAL.items() for old in olds}  # hidden aliases: the docs show the name


def _code_lines(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else "")
    return [line for line in lines if line]


def _edgeseg_invocations(text: str) -> list[list[str]]:
    calls = []
    for line in _code_lines(text) + re.findall(r"`(edgeseg [^`]+)`", text):
        for part in re.split(r"&&|\|", line):
            part = part.strip()
            if part.startswith("$ "):
                part = part[2:]
            match = re.search(r"(?:^|\s)(?:-m )?edgeseg (\S.*)$", part)
            if not match:
                continue
            try:
                calls.append(shlex.split(re.sub(r"\[[^\]]*\]", "", match.group(1))))
            except ValueError:
                continue
    return calls


def test_readme_is_at_most_200_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_readme_has_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]" && edgeseg demo' in text
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest -q' in text


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


@pytest.mark.parametrize("doc", [README, *(d for d in DOCS if d.name != "cli.md")], ids=lambda p: p.name)
def test_every_command_and_flag_shown_exists(doc):  # cli.md is the parsers' own --help
    calls = _edgeseg_invocations(doc.read_text(encoding="utf-8"))
    assert calls or doc != README
    for argv in calls:
        command = argv[0] if argv else ""
        if command.startswith("-"):
            continue
        assert command in SUBCOMMANDS, f"{doc.name}: unknown command in 'edgeseg {' '.join(argv)}'"
        parser = _build_parser(command)
        sub = parser._subparsers._group_actions[0].choices[command]
        known = set()
        for action in sub._actions:
            known.update(action.option_strings)
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # a command with its own subcommands (deploy TARGET)
                for child in choices.values():
                    for child_action in child._actions:
                        known.update(child_action.option_strings)
        for token in argv[1:]:
            if token.startswith("--"):
                flag = token.split("=", 1)[0]
                assert flag in known, f"{doc.name}: 'edgeseg {command}' has no {flag}"
                assert flag not in RETIRED, f"{doc.name}: 'edgeseg {command}' shows {flag}, now {RETIRED[flag]}"


def test_cli_reference_is_generated_from_the_parsers():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_cli_md.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
