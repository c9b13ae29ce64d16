"""The deployment side must import without torch (Jetson footprint), and the package layout must hold."""

import subprocess
import sys

import pytest

CHECK = "import sys; import {module}; print('torch' in sys.modules)"


@pytest.mark.parametrize("module", ["edgeseg", "edgeseg.runtime", "edgeseg.cli.main", "edgeseg.meta",
                                    "edgeseg.errors", "edgeseg.fileio", "edgeseg.metrics", "edgeseg.data",
                                    "edgeseg.runtime.load", "edgeseg.runtime.evaluate", "edgeseg.runtime.bundle",
                                    "edgeseg.runtime.onnxruntime_runner", "edgeseg.calibration.pipeline",
                                    "edgeseg.runtime.bench", "edgeseg.runtime.bench_plan", "edgeseg.runtime.report",
                                    "edgeseg.runtime.report.html", "edgeseg.runtime.report.plots", "edgeseg.demo",
                                    "edgeseg.runtime.environment", "edgeseg.runtime.memory", "edgeseg.crf",
                                    "edgeseg.crf.quality", "edgeseg.runtime.crf", "edgeseg.runtime.dense_crf"])
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
