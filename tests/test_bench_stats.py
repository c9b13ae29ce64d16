"""Latency statistics, the Pareto front, memory accounting and the machine description, on constructed input."""

import numpy as np
import pytest

from edgeseg.runtime.environment import jetson_info, parse_nvpmodel
from edgeseg.runtime.memory import PeakMemory
from edgeseg.runtime.stats import latency_stats, pareto_front, throughput_fps


def test_latency_stats_on_known_samples():
    stats = latency_stats(range(1, 101))  # 1..100 ms
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["mean"] == pytest.approx(50.5)
    assert (stats["min"], stats["max"], stats["n"]) == (1.0, 100.0, 100)
    assert stats["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))


def test_latency_stats_order_does_not_matter_and_single_sample():
    assert latency_stats([5.0, 1.0, 3.0]) == latency_stats([1.0, 3.0, 5.0])
    one = latency_stats([2.5])
    assert one["p99"] == one["min"] == 2.5 and one["std"] == 0.0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [-1.0], [float("inf")]])
def test_latency_stats_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        latency_stats(bad)


def test_pareto_front_on_constructed_points():
    points = [(10, 0.70), (20, 0.68), (15, 0.65), (5, 0.70), None, (20, 0.60), (30, 0.50)]
    # (15,.65) is beaten by (20,.68); (5,.70) by (10,.70); (20,.60) by (20,.68); None has no accuracy
    assert pareto_front(points) == [True, True, False, False, False, False, True]


def test_pareto_front_tolerance_treats_tiny_accuracy_gains_as_ties():
    fp32, fp16 = (30.0, 0.555800), (26.0, 0.555801)
    assert pareto_front([fp32, fp16]) == [True, True]  # exact: fp16 is "more accurate"
    assert pareto_front([fp32, fp16], tolerance=1e-4) == [True, False]  # slower and no better
    assert pareto_front([(30.0, 0.50), (26.0, 0.52)], tolerance=1e-4) == [True, True]  # a real gain


def test_pareto_front_ties_are_all_on_it():
    assert pareto_front([(10, 0.5), (10, 0.5)]) == [True, True]
    assert pareto_front([]) == []


def test_throughput():
    assert throughput_fps(50, 2.0) == 25.0
    with pytest.raises(ValueError):
        throughput_fps(1, 0.0)


def test_peak_memory_sees_an_allocation():
    with PeakMemory() as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block[::512] += 1
    del block
    if not memory.isolated:
        pytest.skip("this kernel does not allow resetting the peak RSS")
    assert memory.increase_mib >= 48
    assert memory.peak_mib >= memory.start_mib + 48
    with PeakMemory() as quiet:  # the 64 MiB peak above must not leak into the next measurement
        pass
    assert quiet.increase_mib < 16


def test_parse_nvpmodel():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel("NVPM WARN: something\nNV Power Mode: 15W\n2") == {"name": "15W", "id": 2}


def test_jetson_info_from_a_fake_root(tmp_path):
    assert jetson_info(tmp_path) is None  # not a Jetson
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    gpu = tmp_path / "sys/class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    for name, hz in (("cur", 1300500000), ("min", 306000000), ("max", 1300500000)):
        (gpu / f"{name}_freq").write_text(f"{hz}\n")
    cpu = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_cur_freq").write_text("2201600\n")
    info = jetson_info(tmp_path, nvpmodel_output="NV Power Mode: MAXN\n0\n")
    assert info["board"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info["l4t"].startswith("# R36")
    assert info["power_mode"] == {"name": "MAXN", "id": 0}
    assert info["gpu_clock_mhz"] == {"cur": 1300, "min": 306, "max": 1300}
    assert info["cpu_clock_mhz"] == [2201]
