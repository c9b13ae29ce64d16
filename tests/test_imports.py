"""The deployment side must import without torch (Jetson footprint), and the package layout must hold."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = "import sys; import {module}; print('torch' in sys.modules)"


@pytest.mark.parametrize("module", ["edgeseg", "edgeseg.runtime", "edgeseg.cli.main", "edgeseg.meta",
                                    "edgeseg.errors", "edgeseg.fileio", "edgeseg.metrics", "edgeseg.data",
                                    "edgeseg.runtime.load", "edgeseg.runtime.evaluate", "edgeseg.runtime.bundle",
                                    "edgeseg.runtime.onnxruntime_runner", "edgeseg.calibration.pipeline",
                                    "edgeseg.runtime.bench", "edgeseg.runtime.bench_plan", "edgeseg.runtime.report",
                                    "edgeseg.runtime.report.html", "edgeseg.runtime.report.plots", "edgeseg.demo",
                                    "edgeseg.runtime.environment", "edgeseg.runtime.memory", "edgeseg.crf",
                                    "edgeseg.crf.quality", "edgeseg.runtime.crf", "edgeseg.runtime.dense_crf",
                                    "edgeseg.runtime.pipeline", "edgeseg.runtime.multisource"])
def test_light_modules_do_not_import_torch(module):
    out = subprocess.run([sys.executable, "-c", CHECK.format(module=module)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False", f"importing {module} imported torch"


def test_side_folders_install_under_edgeseg():
    import edgeseg.calibration
    import edgeseg.export
    import edgeseg.runtime

    for mod in (edgeseg.export, edgeseg.runtime, edgeseg.calibration):
        assert mod.__name__.startswith("edgeseg.")
    out = subprocess.run([sys.executable, "-c", "import runtime"], capture_output=True, text=True,
                         cwd="/")
    assert out.returncode != 0, "a top-level 'runtime' package must not be installed"


def test_models_import_torch_lazily_in_cli():
    code = ("import sys; from edgeseg.cli.main import _build_parser; _build_parser(None); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


ROOT = Path(__file__).resolve().parents[1]
# Who may import whom: the runtime is the bottom layer (it receives what it needs, e.g. calibration images, as
# arguments); export and calibration sit on it and never on each other; the CLI and edgeseg.workflow compose them.
FORBIDDEN = {"runtime": ("edgeseg.export", "edgeseg.calibration", "edgeseg.workflow", "edgeseg.cli"),
             "export": ("edgeseg.calibration", "edgeseg.workflow", "edgeseg.cli"),
             "calibration": ("edgeseg.export", "edgeseg.workflow", "edgeseg.cli")}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_run_one_way_between_the_side_packages(folder):
    bad = [f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / folder).rglob("*.py"))
           for name in sorted(imported_modules(path)) if name.startswith(FORBIDDEN[folder])]
    assert not bad, "\n".join(bad)


def test_cli_command_modules_do_not_import_each_other():
    commands = sorted((ROOT / "edgeseg" / "cli").glob("*_cmd.py"))
    names = {f"edgeseg.cli.{p.stem}" for p in commands}
    bad = [f"{p.name} imports {name}" for p in commands for name in imported_modules(p) if name in names]
    assert not bad, "\n".join(bad)


def test_the_import_rules_see_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from edgeseg.calibration.readers import x\n")
    assert "edgeseg.calibration.readers" in imported_modules(probe)
