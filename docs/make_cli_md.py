"""Write docs/cli.md from the parsers themselves, so the CLI reference cannot drift from the CLI.

    python docs/make_cli_md.py          # rewrite docs/cli.md
    python docs/make_cli_md.py --check  # exit 1 when docs/cli.md is stale (tests/test_readme.py runs this)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "cli.md"
WIDTH = "110"

INTRO = """# The CLI

Generated from the parsers by `python docs/make_cli_md.py`; `edgeseg COMMAND --help` prints the same text.
Conventions shared by every command: results on stdout (a table, or JSON with `--json`), logs and progress on
stderr; every default is shown; a user error is one line, `edgeseg: error: ...`, and exit code 1. Old flag
spellings (`--max-images`, `--eval-images`, `--eval-data`, `--calib-size`, `--batch`, `--crop`, `--report`)
still parse as the one spelling each concept now has, and are hidden from `--help`.
"""


def render() -> str:
    os.environ["COLUMNS"] = WIDTH
    from edgeseg.cli.main import SUBCOMMANDS, _build_parser

    parts = [INTRO]
    for name, (_, help_text) in SUBCOMMANDS.items():
        parser = _build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        parts.append(f"## `edgeseg {name}`\n\n{help_text}.\n\n```text\n{sub.format_help().rstrip()}\n```\n")
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for target, child in action.choices.items():
                    parts.append(f"### `edgeseg {name} {target}`\n\n```text\n{child.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print("docs/cli.md is stale: run python docs/make_cli_md.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
