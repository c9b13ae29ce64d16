"""Version-gated TensorRT features (runtime/trt_features.py), one test per gated feature, and the build
decisions that depend on them or on the bundle: refusals in one line, never an AttributeError from TensorRT."""

import pytest
from bench_fixtures import file_entries
from fake_tensorrt import make_tensorrt

from edgeseg.errors import EdgesegError
from edgeseg.runtime.engine_plan import HARDWARE_LEVELS, BuildOptions, plan_build
from edgeseg.runtime.trt_features import FEATURES, cache_version_number, has_feature, onnx_opset_range

FILES = {"model.onnx": {"kind": "onnx", "precision": "fp32", "sha256": "a" * 64},
         "model.fp16.onnx": {"kind": "onnx", "precision": "fp16", "sha256": "b" * 64},
         "model.int8.onnx": {"kind": "onnx", "precision": "int8", "sha256": "c" * 64, "target": "tensorrt"}}


def plan(options, trt="10.13.0", files=FILES, dla=0, cc="8.9"):
    return plan_build(file_entries(files), options, trt_version=trt, num_dla_cores=dla, gpu_compute_capability=cc)


def test_same_compute_capability_needs_tensorrt_10_9():
    assert not has_feature("hardware_compatibility_same_cc", "10.8.0.43")
    assert has_feature("hardware_compatibility_same_cc", "10.9.0")
    with pytest.raises(EdgesegError, match=r"--hardware-compatibility same-cc needs TensorRT 10\.9 or newer"):
        plan(BuildOptions(hardware_compatibility="same-cc"), trt="10.3.0")
    assert plan(BuildOptions(hardware_compatibility="same-cc"), trt="10.9.0").hardware_level == \
        "SAME_COMPUTE_CAPABILITY"
    with pytest.raises(EdgesegError, match="needs TensorRT 10.9"):
        plan(BuildOptions(crf=True, hardware_compatibility="same-cc"),
             files={**FILES, "crf.onnx": {"kind": "crf", "precision": "fp32"}}, trt="10.8.0")


def test_every_hardware_level_is_an_enum_member_where_it_is_allowed():
    """The table agrees with the binding: each level plan_build allows on a version is a member of that
    version's HardwareCompatibilityLevel (the fake mirrors the enum: SAME_COMPUTE_CAPABILITY from 10.9)."""
    for version in ("10.3.0", "10.8.0", "10.9.0", "10.13.0", "11.0.0"):
        levels = make_tensorrt(version).HardwareCompatibilityLevel
        for choice, member in HARDWARE_LEVELS.items():
            try:
                chosen = plan(BuildOptions(hardware_compatibility=choice), trt=version).hardware_level
            except EdgesegError:
                assert not hasattr(levels, member), (version, member)
                continue
            assert chosen == member and hasattr(levels, member)


def test_legacy_calibrator_is_gone_from_tensorrt_11():
    assert has_feature("legacy_calibrator", "10.15.1") and not has_feature("legacy_calibrator", "11.0.0")
    with pytest.raises(EdgesegError, match="removed the INT8 calibrators"):
        plan(BuildOptions(precision="int8", legacy_calibrator=True, calib_data="x"), trt="11.1.0")


def test_version_compatible_and_ampere_plus_and_strongly_typed_exist_on_every_supported_version():
    for name in ("version_compatible", "hardware_compatibility_ampere_plus", "strongly_typed"):
        assert all(has_feature(name, v) for v in ("10.3.0", "10.13.0", "11.0.0")), name
    assert set(FEATURES) == {"hardware_compatibility_same_cc", "hardware_compatibility_ampere_plus",
                             "version_compatible", "legacy_calibrator", "strongly_typed"}


def test_calibration_cache_number_per_version():
    assert cache_version_number("10.3") == "100300" and cache_version_number("10.3.0.30") == "100300"
    assert cache_version_number("10.13.2") == "101302" and cache_version_number("11.1.0") == "110100"
    assert cache_version_number("8.6.1") == "8601"
    with pytest.raises(EdgesegError, match="not a TensorRT version"):
        cache_version_number("latest")


def test_onnx_opset_range_per_version():
    assert onnx_opset_range("10.3.0") == (9, 20) and onnx_opset_range("10.14.1") == (9, 20)
    assert onnx_opset_range("10.15.1") == (9, 24) and onnx_opset_range("11.0") == (9, 24)


def test_lint_checks_the_opset_for_the_chosen_tensorrt(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgeseg.export.lint import lint_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.checker.check_model(model)
    errors = [(f.severity, f.code) for f in lint_model(model, "m", "10.3").findings]
    assert errors == [("error", "opset")]
    assert [(f.severity, f.code) for f in lint_model(model, "m", "10.15").findings] == []


def test_dla_without_gpu_fallback_implies_it(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="edgeseg.runtime.engine_plan"):
        p = plan(BuildOptions(precision="fp16", dla_core=0), dla=2, cc="8.7")
    assert "GPU_FALLBACK" in p.builder_flags and "implying --gpu-fallback" in caplog.text


def test_int8_build_refuses_a_cpu_target_model():
    cpu = {**FILES, "model.int8.onnx": {**FILES["model.int8.onnx"], "target": "cpu"}}
    with pytest.raises(EdgesegError, match="--int8-target cpu .* TensorRT cannot parse"):
        plan(BuildOptions(precision="int8"), files=cpu)
    assert plan(BuildOptions(precision="int8")).onnx_file == "model.int8.onnx"


def test_auto_prefers_the_gpu_engine_over_a_dla_one():
    from edgeseg.runtime.load import pick_engine

    built = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"}
    files = file_entries({"model.fp16.dla0.engine": {"kind": "engine", "precision": "fp16", "dla_core": 0, **built},
                          "model.fp16.engine": {"kind": "engine", "precision": "fp16", "dla_core": None, **built},
                          "model.fp32.engine": {"kind": "engine", "precision": "fp32", **built}})
    assert pick_engine(files, "fp16") == "model.fp16.engine"
    assert pick_engine({k: v for k, v in files.items() if k != "model.fp16.engine"}, "fp16") == \
        "model.fp16.dla0.engine"
    assert pick_engine(files, "int8") is None


def test_calibration_cache_accepts_colons_in_tensor_names(tmp_path):
    from edgeseg.calibration.cache import read_cache, write_cache

    write_cache(tmp_path / "c", {"onnx::Conv_12:0": 2.54, "image": 255.0}, version="101300")
    version, algorithm, scales = read_cache(tmp_path / "c")
    assert version == "101300" and algorithm == "EntropyCalibration2"
    assert scales["onnx::Conv_12:0"] == pytest.approx(0.02) and scales["image"] == pytest.approx(255 / 127)
    with pytest.raises(EdgesegError, match="cannot be written"):
        write_cache(tmp_path / "c", {"a\nb": 1.0})


def test_export_and_calibrate_write_the_cache_for_the_chosen_tensorrt():
    import argparse

    from edgeseg.cli.variants import add_calibration_arguments, calibration_options

    parser = argparse.ArgumentParser()
    add_calibration_arguments(parser, calibrate=True)
    default = calibration_options(parser.parse_args(["--calib-data", "x"]), int8=True, fp16=False)
    chosen = calibration_options(parser.parse_args(["--calib-data", "x", "--trt-version", "10.13.2"]), True, False)
    assert (default.trt_version, chosen.trt_version) == ("100300", "101302")  # JetPack 6's 10.3 by default
