"""The weak-supervision benchmark's core function at a tiny budget: the result's shape, and label statistics
measured from the simulated annotations (points < scribbles < dense = 1)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "weak_supervision.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("weak_supervision_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def result(bench):
    budget = bench.Budget(model="lednet", iters=2, batch_size=2, crop=(32, 64), val_images=1, label_scenes=3,
                          workers=0)
    settings = [s for s in bench.SETTINGS if s[0] in ("full", "points", "scribbles", "scribbles + gCRF")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the benchmark runs: on shared cores, two threads can be many times slower
    try:
        return bench.run_benchmark(budget, settings=settings)
    finally:
        torch.set_num_threads(threads)


def test_result_shape(bench, result):
    doc = json.loads(json.dumps(result))  # JSON-able as written
    assert doc["benchmark"] == "weak_supervision"
    assert [r["setting"] for r in doc["runs"]] == ["full", "points", "scribbles", "scribbles + gCRF"]
    for run in doc["runs"]:
        assert run["iterations"] == 2  # every run takes the same number of steps
        assert 0.0 <= run["miou"] <= 1.0 and 0.0 <= run["boundary_f"] <= 1.0
        assert len(run["per_class_iou"]) == 8 and "road" in run["per_class_iou"]
        assert len(run["loadavg_before"]) == 3 and run["seconds_per_step"] > 0
    full = doc["runs"][0]
    assert full["pct_of_full"] == 100.0
    assert doc["runs"][1]["pct_of_full"] == pytest.approx(100 * doc["runs"][1]["miou"] / full["miou"], abs=0.06)
    assert set(doc["verdict"]) == {"scribbles"}  # only scribbles ran both with and without the gated CRF
    gain = doc["verdict"]["scribbles"]["miou_gain"]
    assert gain == pytest.approx(doc["runs"][3]["miou"] - doc["runs"][2]["miou"], abs=1e-4)
    check = doc["gcrf"]["kernel_check"]
    assert check["mean_kernel_same_class"] > check["mean_kernel_different_class"] > 0
    assert check["grid"] == [8, 16]  # the 32x64 crop at stride 4
    assert "scribbles + gCRF" in bench.table(result)


def test_labelled_fractions_are_measured(result):
    labels = {r["weak"]: r["labels"] for r in result["runs"]}
    points, scribbles, full = (labels[k]["labelled_fraction"] for k in ("points", "scribbles", "none"))
    assert 0 < points < scribbles < full == 1.0
    assert scribbles < 0.2  # strokes, not masks
    assert labels["points"]["annotations_per_image"] >= 5  # a click per region of every class present
    assert labels["none"]["annotations_per_image"] is None


def test_compare_takes_the_gated_run_minus_its_twin(bench):
    runs = [{"weak": "points", "gcrf": False, "miou": 0.30, "boundary_f": 0.20},
            {"weak": "points", "gcrf": True, "miou": 0.35, "boundary_f": 0.18},
            {"weak": "boxes", "gcrf": False, "miou": 0.4, "boundary_f": 0.3}]
    verdict = bench.compare(runs)
    assert set(verdict) == {"points"}  # boxes ran one way only
    assert verdict["points"] == {"miou_gain": 0.05, "boundary_f_gain": -0.02, "gcrf_better": True}
