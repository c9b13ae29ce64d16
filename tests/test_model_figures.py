"""``edgeseg models`` reads its figures from a cache keyed by each model's source: the committed cache must be
current (a model edited without `edgeseg models --refresh` fails here), equal to fresh counts, and never read
for code it was not counted from."""

import json
import shutil
import subprocess
import sys

import pytest

from edgeseg import model_figures as mf

TINY = ("lednet", "dfanet_b")


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESEG_CACHE_DIR", str(tmp_path / "user-cache"))


def _entry(name: str) -> dict:
    return next(e for e in mf.registry_entries() if e["name"] == name)


def test_the_committed_cache_holds_every_model_as_its_code_is_now():
    cache = mf.FigureCache(user=mf.Path("/nonexistent/cache.json"))
    assert cache.entries() == mf.registry_entries(), "model modules changed: run `edgeseg models --refresh`"
    stale = [e["name"] for e in mf.registry_entries()
             if cache.get(cache.key(e, mf.DEFAULT_NUM_CLASSES, e["input_size"])) is None]
    assert not stale, f"figures of {stale} were counted from other code: run `edgeseg models --refresh`"


@pytest.mark.parametrize("name", TINY)
def test_committed_figures_equal_fresh_counts(name):
    entry = _entry(name)
    cache = mf.FigureCache(user=mf.Path("/nonexistent/cache.json"))
    cached = cache.get(cache.key(entry, mf.DEFAULT_NUM_CLASSES, entry["input_size"]))
    assert cached == mf.compute(name, mf.DEFAULT_NUM_CLASSES, entry["input_size"])


def _models_copy(tmp_path):
    return shutil.copytree(mf.MODELS, tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))


def test_an_edit_to_a_model_or_anything_it_imports_changes_its_key(tmp_path):
    models = _models_copy(tmp_path)
    before = mf.source_hash("edgeseg.models.lednet", models)
    assert before == mf.source_hash("edgeseg.models.lednet")  # the same code, wherever it lies
    with open(models / "bisenetv2.py", "a") as f:  # another model's code: lednet's key stays
        f.write("\n# edited\n")
    assert mf.source_hash("edgeseg.models.lednet", models) == before
    with open(models / "layers" / "conv.py", "a") as f:  # imported through edgeseg.models.layers
        f.write("\n# edited\n")
    assert mf.source_hash("edgeseg.models.lednet", models) != before


def test_a_new_or_edited_model_module_invalidates_the_committed_registry(tmp_path):
    models = _models_copy(tmp_path)
    committed = tmp_path / "figures.json"
    shutil.copy(mf.COMMITTED, committed)
    assert mf.FigureCache(committed, models=models).entries() is not None
    with open(models / "lednet.py", "a") as f:
        f.write("\n# edited\n")
    assert mf.FigureCache(committed, models=models).entries() is None


def _doctored(tmp_path, name: str, params: int, *, stale: bool) -> mf.Path:
    """A copy of the committed cache whose entry for ``name`` claims ``params``, under its current key or
    (``stale``) under the key of other code."""
    doc = json.loads(mf.COMMITTED.read_text())
    cache = mf.FigureCache()
    entry = _entry(name)
    key = cache.key(entry, mf.DEFAULT_NUM_CLASSES, entry["input_size"])
    figures = doc["figures"].pop(key)
    if stale:
        key = key.replace("src=", "src=0")
    doc["figures"][key] = {**figures, "params": params}
    path = tmp_path / "doctored.json"
    path.write_text(json.dumps(doc))
    return path


def test_models_reads_the_cache_under_the_current_key_only(cli_here, tmp_path, monkeypatch):
    monkeypatch.setattr(mf, "COMMITTED", _doctored(tmp_path, "lednet", 1234, stale=False))
    out = cli_here("models", "lednet", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["params"] == 1234 and "counting" not in out.stderr  # read, not counted
    monkeypatch.setattr(mf, "COMMITTED", _doctored(tmp_path, "lednet", 1234, stale=True))
    out = cli_here("models", "lednet", "--json")
    assert json.loads(out.stdout)[0]["params"] == 922777 and "counting parameters and FLOPs of 1 model" in out.stderr


def test_uncached_figures_are_counted_with_a_progress_line_then_kept(cli_here, tmp_path):
    args = ("models", "dfanet_b", "--input-size", "64x128", "--num-classes", "3", "--json")
    first = cli_here(*args)
    assert first.returncode == 0, first.stderr
    assert "counting parameters and FLOPs of 1 model" in first.stderr and "models [" in first.stderr
    row = json.loads(first.stdout)[0]
    assert row["params"] == mf.compute("dfanet_b", 3, (64, 128)).params and row["input_size"] == [64, 128]
    assert (tmp_path / "user-cache" / "model_figures.json").is_file()
    second = cli_here(*args)
    assert "counting" not in second.stderr and json.loads(second.stdout) == [row]


def test_refresh_rewrites_the_committed_cache(cli_here, tmp_path, monkeypatch):
    target = tmp_path / "figures.json"
    monkeypatch.setattr(mf, "COMMITTED", target)
    entries = [_entry(n) for n in TINY]
    monkeypatch.setattr(mf, "registry_entries", lambda: entries)
    out = cli_here("models", "--refresh", "--json")
    assert out.returncode == 0, out.stderr
    cache = mf.FigureCache(target, user=tmp_path / "none.json")
    assert json.loads(target.read_text())["registry"]["sha256"] == mf.registry_hash()
    for entry in entries:
        assert cache.get(cache.key(entry, 19, entry["input_size"])) == mf.compute(entry["name"], 19,
                                                                                  entry["input_size"])


def test_the_listing_needs_no_torch():
    code = ("import sys; from edgeseg.cli.main import main; rc = main(['models', '--json']); "
            "sys.exit(rc or 10 * ('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == len(mf.registry_entries())
