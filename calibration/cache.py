"""TensorRT's INT8 calibration cache (the text format IInt8EntropyCalibrator2 reads and writes).

Line 1: ``TRT-<version>-EntropyCalibration2``, where ``<version>`` is the reading TensorRT's own version number
(``NV_TENSORRT_VERSION``: major*10000 + minor*100 + patch, 100300 for 10.3.0; TensorRT skips a cache that names
another version); then ``<tensor name>: <hex>`` per tensor, where ``<hex>`` is the big-endian bit pattern of the
float32 scale ``amax / 127``. Tensor names may contain ``:`` (the value is after the last ``": "``). edgeseg
writes it from the same calibration that produced the Q/DQ model, for TensorRT 10's implicit-quantization path;
``--trt-version`` chooses the version it is written for (JetPack 6's 10.3 by default), and ``edgeseg build``
hands it to the installed TensorRT with the header rewritten for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.trt_features import cache_version_number

ALGORITHM = "EntropyCalibration2"
DEFAULT_TRT = "10.3"  # JetPack 6
DEFAULT_VERSION = cache_version_number(DEFAULT_TRT)  # "100300"


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", float(scale)).hex()


def hex_to_scale(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text.strip()))[0]


def write_cache(path: str | Path, amax: dict[str, float], version: str = DEFAULT_VERSION,
                algorithm: str = ALGORITHM) -> None:
    """Write ``{tensor: amax}`` as a cache with scale = amax / 127 (a zero range gets the smallest scale)."""
    lines = [f"TRT-{version}-{algorithm}"]
    for name, value in amax.items():
        if not name or "\n" in name or "\r" in name:
            raise EdgesegError(f"tensor name {name!r} cannot be written to a TensorRT calibration cache")
        lines.append(f"{name}: {scale_to_hex(max(abs(float(value)), 1e-8) / 127.0)}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_cache(path: str | Path) -> tuple[str, str, dict[str, float]]:
    """``(version, algorithm, {tensor: scale})``; a malformed file is an :class:`EdgesegError`."""
    text = Path(path).read_text(encoding="utf-8").splitlines()
    if not text or not text[0].startswith("TRT-") or text[0].count("-") < 2:
        raise EdgesegError(f"{path}: not a TensorRT calibration cache (first line {text[0] if text else ''!r})")
    _, version, algorithm = text[0].split("-", 2)
    scales = {}
    for number, line in enumerate(text[1:], 2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        if not sep or len(value.strip()) != 8:
            raise EdgesegError(f"{path}:{number}: expected 'tensor: <8 hex digits>', got {line!r}")
        try:
            scales[name] = hex_to_scale(value)
        except ValueError:
            raise EdgesegError(f"{path}:{number}: {value!r} is not hex") from None
    return version, algorithm, scales
