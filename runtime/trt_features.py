"""Which TensorRT version has which feature edgeseg uses: one table, consulted before any TensorRT call.

Each entry gives the first version that has the feature and the first that no longer has it (None: still
there), with the evidence the bound was read from (the Python binding sources and headers of the TensorRT
release in question). A feature the running TensorRT lacks is refused in one line that names the version it
needs, instead of an ``AttributeError`` from the binding. Pure: tested without TensorRT.

Also here, because they depend on the version alone: the number TensorRT writes into a calibration cache header
(:func:`cache_version_number`) and the ONNX opset range its parser documents (:func:`onnx_opset_range`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeseg.errors import EdgesegError

Version = tuple[int, int, int]


@dataclass(frozen=True)
class Feature:
    """A TensorRT capability available in ``[since, until)``; ``flag`` is how a user asks for it."""

    name: str
    since: Version
    until: Version | None
    flag: str
    evidence: str


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("hardware_compatibility_same_cc", (10, 9, 0), None, "--hardware-compatibility same-cc",
            "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY: absent from the 10.8 bindings, bound in 10.9"),
    Feature("hardware_compatibility_ampere_plus", (8, 6, 0), None, "--hardware-compatibility ampere+",
            "HardwareCompatibilityLevel.AMPERE_PLUS: bound in every 10.x and 11.x"),
    Feature("version_compatible", (8, 6, 0), None, "--version-compatible",
            "BuilderFlag.VERSION_COMPATIBLE and IRuntime.engine_host_code_allowed: bound in 10.3 and 11.x"),
    Feature("legacy_calibrator", (8, 0, 0), (11, 0, 0), "--legacy-calibrator",
            "IInt8EntropyCalibrator2 and BuilderFlag.INT8/FP16: the 11.0 bindings no longer have them"),
    Feature("strongly_typed", (9, 0, 0), None, "strongly typed networks",
            "NetworkDefinitionCreationFlag.STRONGLY_TYPED: bound in 10.x and 11.x"),
)}

# The inclusive opset range onnx-tensorrt's docs/operators.md states per release; a version between two listed
# releases gets the range of the older one (what it certainly parses).
OPSET_RANGES: tuple[tuple[Version, tuple[int, int]], ...] = (
    ((10, 0, 0), (9, 20)),  # "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20"
    ((10, 15, 0), (9, 24)),  # the same sentence for TensorRT 10.15: opset 9 to opset 24
)


def parse_version(text: str | tuple) -> Version:
    """``"10.13.0.35"`` → ``(10, 13, 0)``; a short version is padded with zeros."""
    if isinstance(text, tuple):
        parts = [int(x) for x in text]
    else:
        parts = [int(x) for x in re.findall(r"\d+", str(text))]
    if not parts:
        raise EdgesegError(f"not a TensorRT version: {text!r}")
    parts = (parts + [0, 0, 0])[:3]
    return parts[0], parts[1], parts[2]


def has_feature(name: str, version: str | tuple) -> bool:
    """Whether TensorRT ``version`` has feature ``name`` (a key of :data:`FEATURES`)."""
    feature = FEATURES[name]
    v = parse_version(version)
    return feature.since <= v and (feature.until is None or v < feature.until)


def require_feature(name: str, version: str | tuple) -> None:
    """Refuse, in one line, a feature TensorRT ``version`` does not have."""
    if has_feature(name, version):
        return
    feature = FEATURES[name]
    if feature.until is not None and parse_version(version) >= feature.until:
        raise EdgesegError(f"{feature.flag} is not available in TensorRT {version}: it was removed in "
                           f"{_text(feature.until)}")
    raise EdgesegError(f"{feature.flag} needs TensorRT {_text(feature.since)} or newer (this is {version})")


def cache_version_number(version: str | tuple) -> str:
    """The number TensorRT writes after ``TRT-`` in a calibration cache: its ``NV_TENSORRT_VERSION``, which is
    major*10000 + minor*100 + patch from TensorRT 10 on (10.3.0 → ``100300``, 10.13.2 → ``101302``) and was
    major*1000 + minor*100 + patch before (8.6.1 → ``8601``)."""
    major, minor, patch = parse_version(version)
    if not (0 <= minor < 100 and 0 <= patch < 100):
        raise EdgesegError(f"TensorRT version {version!r} has no calibration-cache number")
    return str(major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch)


def onnx_opset_range(version: str | tuple) -> tuple[int, int]:
    """The ONNX opsets TensorRT ``version``'s parser is documented to take (inclusive)."""
    v = parse_version(version)
    if v < OPSET_RANGES[0][0]:
        raise EdgesegError(f"TensorRT {version} is too old: edgeseg targets TensorRT 10.x or 11.x")
    return next(r for since, r in reversed(OPSET_RANGES) if since <= v)


def _text(version: Version) -> str:
    return ".".join(str(x) for x in (version[:2] if version[2] == 0 else version))
