"""OpenVINO's compile settings, checked without OpenVINO: what makes its latency mean one thing."""

from edgeseg.runtime.openvino_runner import compile_config


def test_compile_config_pins_latency_f32_and_threads():
    """LATENCY (one stream), f32 (not the bf16/f16 the CPU plugin picks on CPUs that have it) and ``--threads``
    as INFERENCE_NUM_THREADS; no thread count leaves the plugin's default (all cores)."""
    assert compile_config(2) == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                 "INFERENCE_NUM_THREADS": 2}
    assert compile_config(None) == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
