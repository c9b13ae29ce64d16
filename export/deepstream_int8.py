"""The INT8 calibration table nvinfer reads (``int8-calib-file``), carried over from the bundle's ``calib.cache``.

nvinfer builds INT8 with an ``IInt8EntropyCalibrator2`` that only reads this file (``NvDsInferInt8Calibrator``
in DeepStream's ``nvdsinfer_context_impl.cpp``): TensorRT's text cache, ``TRT-<version>-EntropyCalibration2``
then ``<tensor>: <hex float32 scale>`` per tensor, keyed by the ONNX tensor names TensorRT's parser keeps. The
variant (:mod:`edgeseg.export.deepstream_graph`) computes every tensor from the normalised image on exactly as
the bundle's graph does and under the same name, so those scales apply unchanged; they are copied bit for bit.
What the variant no longer has (the uint8 image, its Cast and Transpose) is left out, and its new float input
gets the scale of its exact range, 0-255 (amax 255, scale 255/127). The cache is taken only when the manifest
vouches that it was calibrated for this bundle's fp32 ONNX and deploy size (the check ``edgeseg build`` makes).

The scales are those ``edgeseg build --legacy-calibrator`` hands TensorRT for the same graph body, so that
engine, built and measured with edgeseg on the Jetson, is the closest stand-in for nvinfer's; neither is the
Q/DQ model the accuracy gate scored, since implicit INT8 lets TensorRT choose per layer.
"""

from __future__ import annotations

import logging
import re
import struct
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.deepstream_graph import VARIANT_INPUT, Variant
from edgeseg.runtime.bundle import Bundle
from edgeseg.runtime.engine_plan import check_cache_identity
from edgeseg.runtime.trt_features import cache_version_number, has_feature

log = logging.getLogger(__name__)

INPUT_AMAX = 255.0  # nvinfer's planar float input with net-scale-factor=1 and no offsets: pixels in 0-255
ALGORITHM = "EntropyCalibration2"  # nvinfer's calibrator is an IInt8EntropyCalibrator2
_HEX = re.compile(r"[0-9a-fA-F]{8}")


def bundle_cache(bundle: Bundle) -> tuple[str, Path]:
    """The name and path of the bundle's TensorRT calibration cache, verified (sha256) and vouched for by its
    manifest, or a refusal that says how to make one."""
    name = bundle.find("calibration-cache", "int8")
    if name is None:
        raise EdgesegError(f"{bundle.root} has no TensorRT INT8 calibration cache (calib.cache), which nvinfer "
                           f"needs for network-mode=1: run edgeseg calibrate {bundle.root} --int8 --calib-data SPEC "
                           f"(target tensorrt), or deploy --precision fp16")
    check_cache_identity(bundle.files, bundle.manifest.calibration, bundle.input_size)
    return name, bundle.path(name)


def read_entries(cache: Path) -> dict[str, str]:
    """``{tensor: scale as its 8 hex digits}``, as written, from a TensorRT entropy-calibration cache (a tensor
    name may hold ``": "``: the scale follows the last one)."""
    try:
        lines = cache.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgesegError(f"{cache} is unreadable: {exc}") from None
    head = lines[0].split("-", 2) if lines else []
    if len(head) != 3 or head[0] != "TRT" or head[2] != ALGORITHM:
        raise EdgesegError(f"{cache}: not a TensorRT {ALGORITHM} cache (first line {lines[0] if lines else ''!r}); "
                           f"nvinfer's calibrator reads only those")
    entries = {}
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        if not sep or not name or not _HEX.fullmatch(value.strip()):
            raise EdgesegError(f"{cache}:{number}: expected 'tensor: <8 hex digits>', got {line!r}")
        entries[name] = value.strip()
    return entries


def variant_scales(cache: Path, variant: Variant) -> tuple[dict[str, str], list[str]]:
    """``({tensor: hex scale}, [dropped tensors])`` for the variant: the cache's entries for tensors the variant
    keeps, in the cache's order and as written, and its new input's 0-255 range first."""
    names = variant.tensor_names()
    kept = {VARIANT_INPUT: struct.pack(">f", INPUT_AMAX / 127.0).hex()}
    dropped = []
    for name, hex_scale in read_entries(cache).items():
        if name == VARIANT_INPUT:
            raise EdgesegError(f"{cache} has a scale for {VARIANT_INPUT!r}, the name of the DeepStream graph's new "
                               f"input; refusing to guess which one it means")
        if name in names:
            kept[name] = hex_scale
        else:
            dropped.append(name)
    if len(kept) == 1:
        raise EdgesegError(f"{cache} has no scale for any tensor of the DeepStream graph: it belongs to another "
                           f"graph; rerun edgeseg calibrate")
    return kept, dropped


def require_calibrator(trt_version: str) -> None:
    """Refuse a TensorRT without the INT8 calibrators nvinfer reads ``int8-calib-file`` with."""
    if not has_feature("legacy_calibrator", trt_version):
        raise EdgesegError(f"TensorRT {trt_version} has no INT8 calibrator to read int8-calib-file (TensorRT 11 "
                           f"removed them); deploy --precision fp16")


def cache_text(scales: dict[str, str], trt_version: str) -> str:
    """The cache file for the TensorRT that nvinfer builds with (TensorRT skips a cache naming another version)."""
    require_calibrator(trt_version)
    lines = [f"TRT-{cache_version_number(trt_version)}-{ALGORITHM}"]
    for name, hex_scale in scales.items():
        if not name or "\n" in name or "\r" in name:
            raise EdgesegError(f"tensor name {name!r} cannot be written to a TensorRT calibration cache")
        lines.append(f"{name}: {hex_scale}")
    return "\n".join(lines) + "\n"
