"""Every subcommand follows the same conventions: defaults shown in --help, worked examples, one spelling per
concept (the replaced spellings still parse, hidden), ``--json`` with a parseable stdout, results alone on
stdout. Each rule runs over every subcommand in ``edgeseg.cli.main.SUBCOMMANDS``."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from bench_fixtures import make_threshold_bundle, make_threshold_data

from edgeseg.cli.common import CANONICAL, PRECISION_DEFAULT, SHARED_DEFAULTS
from edgeseg.cli.main import SUBCOMMANDS, _build_parser

# Commands still being written elsewhere (placeholders): delete this list when they are merged.
PLACEHOLDERS: tuple[str, ...] = ()
COMMANDS = [name for name in SUBCOMMANDS if name not in PLACEHOLDERS]

# Every flag renamed for one vocabulary, per command: the old spelling still parses as the new one.
RENAMED = [
    ("eval", "--max-images", "--val-images"),
    ("bench", "--max-images", "--val-images"),
    ("bench", "--batch", "--batch-size"),
    ("bench", "--report", "--out"),
    ("export", "--batch", "--batch-size"),
    ("train", "--crop", "--input-size"),
    *[(command, old, new) for command in ("export", "calibrate") for old, new in (
        ("--calib-size", "--calib-images"), ("--eval-images", "--val-images"), ("--eval-data", "--val-data"))],
]
OLD_SPELLINGS = {old for olds in CANONICAL.values() for old in olds}


def command_parser(name: str) -> argparse.ArgumentParser:
    parser = _build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def parsers(name: str):
    """The command's parser and, for a command with subcommands of its own, theirs: (label, parser)."""
    todo = [(name, command_parser(name))]
    while todo:
        label, parser = todo.pop()
        yield label, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{label} {sub}", p) for sub, p in action.choices.items()]


def shown(action: argparse.Action) -> bool:
    return action.help is not argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)


def sample(action: argparse.Action) -> list[str]:
    """A value ``action`` accepts (none for a flag)."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(next(iter(action.choices)))]
    for text in ("3", "64x64", "x"):
        try:
            if action.type is not None:
                action.type(text)
            return [text]
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    raise AssertionError(f"no sample value for {action.option_strings}")


def minimal_argv(parser: argparse.ArgumentParser) -> list[str]:
    """The fewest arguments ``parser`` accepts: every positional and every required option, with sample values."""
    options, positionals, tail = [], [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name, sub = next(iter(action.choices.items()))
            tail = [name, *minimal_argv(sub)]
        elif not action.option_strings:
            positionals += sample(action)
        elif action.required:
            options += [action.option_strings[0], *sample(action)]
    return options + positionals + tail


def parse(name: str, *extra: str) -> dict:
    namespace = _build_parser(name).parse_args([name, *minimal_argv(command_parser(name)), *extra])
    return {k: v for k, v in vars(namespace).items() if not k.startswith("_")}


# -- help text ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMMANDS)
def test_every_default_is_shown_in_help(name):
    for label, parser in parsers(name):
        for action in parser._actions:
            if not shown(action) or action.default in (None, False, argparse.SUPPRESS):
                continue
            shown_help = parser._get_formatter()._get_help_string(action)  # as --help renders it
            assert shown_help and "default" in shown_help.lower(), \
                f"edgeseg {label} {'/'.join(action.option_strings) or action.dest}: default {action.default!r} " \
                f"not in its help"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_closes_its_help_with_examples(name):
    parser = command_parser(name)
    assert parser.epilog and f"edgeseg {name} " in parser.epilog, f"edgeseg {name} --help has no example"
    text = parser.format_help()
    examples = text[text.index("examples:"):].splitlines()[1:]
    assert examples and all(line.startswith(f"  edgeseg {name}") for line in examples), text  # one per line


# -- one vocabulary -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMMANDS)
def test_one_spelling_per_concept(name):
    for label, parser in parsers(name):
        for action in parser._actions:
            old = OLD_SPELLINGS.intersection(action.option_strings)
            if old and shown(action):
                new = next(flag for flag, olds in CANONICAL.items() if old & set(olds))
                pytest.fail(f"edgeseg {label} shows {sorted(old)[0]}: the one spelling is {new}")
            if old:  # a hidden alias: it sets what the one spelling sets
                new = next(flag for flag, olds in CANONICAL.items() if old & set(olds))
                assert parser._option_string_actions[new].dest == action.dest, (label, old)


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_flags_have_the_same_default_everywhere(name):
    for label, parser in parsers(name):
        for flag, default in SHARED_DEFAULTS.items():
            action = parser._option_string_actions.get(flag)
            if action is not None:  # None: the command's config file supplies it, as the help says
                assert action.default in (default, None) and f"default {default}" in action.help, (label, flag)
        precision = parser._option_string_actions.get("--precision")
        if precision is not None:  # one variant: the reference; several (bench): all of them
            expected = "all" if "all" in precision.choices else PRECISION_DEFAULT
            assert precision.default == expected, (label, precision.default)


@pytest.mark.parametrize("command, old, new", RENAMED)
def test_a_replaced_spelling_still_parses_as_the_new_one(command, old, new):
    parser = command_parser(command)
    assert parser._option_string_actions[old].help is argparse.SUPPRESS
    value = sample(parser._option_string_actions[new])
    assert parse(command, old, *value) == parse(command, new, *value) != parse(command)


def test_calibrate_still_takes_no_fp16():
    assert parse("calibrate", "--no-fp16")["fp16"] is False


# -- JSON on stdout -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_takes_json(name):
    for label, parser in parsers(name):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a dispatcher (deploy TARGET): its targets print the results
        action = parser._option_string_actions.get("--json")
        assert action is not None and action.nargs == 0 and shown(action), f"edgeseg {label} has no --json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    bundle = make_threshold_bundle(root / "b")
    spec, _ = make_threshold_data(root / "data")
    return root, bundle, spec


def _cheap_runs(root, bundle, spec) -> dict[str, list]:
    """A quick run of each command that has one on tiny inputs (train, export, calibrate and demo take minutes)."""
    return {
        "models": ["models", "lednet"],
        "import": ["import", "--list"],
        "lint": ["lint", bundle / "model.onnx"],
        "eval": ["eval", bundle, "--data", spec, "--backend", "onnxruntime"],
        "bench": ["bench", bundle, "--backend", "onnxruntime", "--iters", "1", "--warmup", "0", "--data", spec,
                  "--out", root / "bench"],
        "report": ["report", root / "bench", "--out", root / "merged"],
        "run": ["run", bundle, "--source", root / "data" / "images", "--backend", "onnxruntime"],
        "build": ["build", bundle, "--print-trtexec"],
    }


@pytest.mark.parametrize("name", ["models", "import", "lint", "eval", "bench", "report", "run", "build"])
def test_json_output_parses_and_text_is_not_json(name, tiny, cli_here, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESEG_CACHE_DIR", str(tmp_path / "cache"))
    root, bundle, spec = tiny
    runs = _cheap_runs(root, bundle, spec)
    if name == "report":
        assert cli_here(*runs["bench"], "--json").returncode == 0
    args = [str(a) for a in runs[name]]
    out = cli_here(*args, "--json")
    assert out.returncode in (0, 1) and out.stdout, out.stderr  # lint fails on findings, with its JSON
    json.loads(out.stdout)
    text = cli_here(*args)
    assert text.stdout.strip()
    with pytest.raises(ValueError):
        json.loads(text.stdout)


# -- stdout carries results only ------------------------------------------------------------------------------------

def test_native_prints_of_a_command_go_to_stderr(tmp_path):
    """A library's C++ code writing to file descriptor 1 (ONNX Runtime, onnxsim) does not reach stdout."""
    code = """
import os, sys
import edgeseg.cli.models_cmd as command
listing = command.main
def noisy(args):
    os.write(1, b"native noise\\n")
    return listing(args)
command.main = noisy
from edgeseg.cli.main import main
sys.exit(main(["models", "lednet", "--json"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "EDGESEG_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["name"] == "lednet" and "native noise" in out.stderr


@pytest.mark.parametrize("in_command", [True, False])
def test_a_printing_library_call_prints_to_stderr(in_command):
    """Around a library call (the torch exporter, onnxsim, ONNX Runtime's quantizer), Python prints and native
    writes go to stderr, inside a command (whose results stream is not descriptor 1) or outside one."""
    code = f"""
import contextlib, os
from edgeseg.stdio import native_stdout_to_stderr, stdout_to_stderr
with native_stdout_to_stderr() if {in_command} else contextlib.nullcontext():
    with stdout_to_stderr():
        print("python print", flush=True)
        os.write(1, b"native print\\n")
    print("result")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "result\n" and "python print" in out.stderr and "native print" in out.stderr
