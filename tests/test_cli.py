import json

import pytest

from edgeseg import __version__


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    """Figures `edgeseg models` counts on demand go to the test's own cache, not the user's."""
    monkeypatch.setenv("EDGESEG_CACHE_DIR", str(tmp_path / "user-cache"))


def test_version(cli):
    out = cli("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_models_json_lists_every_model_with_params_and_gflops(cli_here):
    out = cli_here("models", "--json", "--input-size", "256x512", "--num-classes", "11")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    names = {r["name"] for r in rows}
    assert {"bisenetv1", "bisenetv2", "dfanet_a", "dfanet_b", "lednet"} <= names
    for r in rows:
        assert r["params"] > 1e5 and r["gflops"] > 0 and r["input_size"] == [256, 512]
        assert r["num_classes"] == 11 and r["paper"]
    v2 = next(r for r in rows if r["name"] == "bisenetv2")
    # FLOPs scale with area: a quarter of the default 512x1024
    assert 0.2 < v2["gflops"] / 49.2 < 0.3


def test_models_table(cli_here):
    out = cli_here("models", "lednet")
    assert out.returncode == 0
    assert "lednet" in out.stdout and "bisenetv2" not in out.stdout and "0.923M params" in out.stdout


def test_user_errors_are_one_line_exit_1(cli):
    for args in (["models", "nomatch*"], ["models", "--input-size", "12a"], ["frobnicate"]):
        out = cli(*args)
        assert out.returncode == 1, args
        assert out.stderr.strip().count("\n") == 0 and "error" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_no_command_prints_help_and_fails(cli):
    out = cli()
    assert out.returncode == 1 and "models" in out.stdout
