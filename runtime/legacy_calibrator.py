"""The implicit-INT8 calibrator of ``edgeseg build --legacy-calibrator`` (TensorRT 10 only).

:class:`CalibrationFeeder` holds everything but the TensorRT base class, so it is tested without TensorRT:

* the deploy graph's input is uint8 N×H×W×3 ``image``; TensorRT takes calibration data for every non-index
  input (anything but float32/int32/int64/bool) as **float32** of the input's shape, so each batch is the
  images cast to float32, NHWC as the input is, ``batch`` images per call into a device buffer of that size;
* a failure inside ``get_batch`` is logged and recorded (the binding would print it and read it as "no more
  batches", and the build would go on with fewer batches or none): :meth:`CalibrationFeeder.check` raises it
  after the build, as it does when calibration consumed no batch at all;
* a ``calib.cache`` is handed to TensorRT with its header rewritten for the TensorRT that reads it (TensorRT
  skips a cache whose header names another version; the scales do not depend on it);
* the device buffer and stream are freed by :meth:`CalibrationFeeder.free`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.runtime.cuda import CudaApi
from edgeseg.runtime.trt_features import cache_version_number

log = logging.getLogger(__name__)


def retarget_cache_header(data: bytes, trt_version: str) -> bytes:
    """``data`` (a calibration cache) with its first line's version set to ``trt_version``'s number:
    ``TRT-100300-EntropyCalibration2`` becomes ``TRT-101300-EntropyCalibration2`` for TensorRT 10.13.0."""
    head, newline, rest = data.partition(b"\n")
    parts = head.split(b"-", 2)
    if len(parts) != 3 or parts[0] != b"TRT":
        raise EdgesegError(f"not a TensorRT calibration cache (first line {head[:60]!r})")
    return b"-".join((parts[0], cache_version_number(trt_version).encode(), parts[2])) + newline + rest


class CalibrationFeeder:
    """What an IInt8EntropyCalibrator2 does, minus the TensorRT base class (see the module docstring).

    ``images``: uint8 N×H×W×3 at the deploy size, or None to use the cache alone; ``batch``: the network
    input's (static) batch size; ``read_cache``: whether TensorRT may take ``cache_path`` (only a cache the
    manifest vouches for, never a file left over from another calibration)."""

    def __init__(self, cuda: CudaApi, cache_path: Path, images: np.ndarray | None, *, batch: int,
                 trt_version: str, read_cache: bool) -> None:
        self.cuda, self.cache_path, self.batch = cuda, cache_path, int(batch)
        self.trt_version, self.read_cache = trt_version, read_cache
        self.images = images
        self.index = self.served = 0
        self.error: BaseException | None = None
        self.stream = self.buffer = None
        if images is not None:
            if images.ndim != 4 or images.shape[-1] != 3:
                raise EdgesegError(f"calibration images must be N×H×W×3, got {images.shape}")
            if len(images) < self.batch:
                raise EdgesegError(f"the legacy calibrator needs at least {self.batch} images (one batch), got "
                                   f"{len(images)}")
            if len(images) % self.batch:
                log.warning("calibrating on %d of %d images (whole batches of %d)",
                            len(images) - len(images) % self.batch, len(images), self.batch)
            self.stream = cuda.stream()
            self.buffer = cuda.malloc(self.batch * int(np.prod(images.shape[1:])) * np.dtype(np.float32).itemsize)

    def get_batch_size(self) -> int:
        return self.batch

    def get_batch(self, names: list[str]) -> list[int] | None:
        """The device address of the next float32 batch, or None when there is none (or after a failure,
        which :meth:`check` raises once the build returns)."""
        try:
            if self.images is None or self.buffer is None or self.index + self.batch > len(self.images):
                return None
            if len(names) != 1:
                raise EdgesegError(f"the legacy calibrator feeds one input, TensorRT asks for {names}")
            batch = np.ascontiguousarray(self.images[self.index:self.index + self.batch], dtype=np.float32)
            self.cuda.htod(self.buffer, batch, self.stream)
            self.cuda.synchronize(self.stream)
            self.index += self.batch
            self.served += 1
            return [self.buffer.ptr]
        except Exception as exc:  # noqa: BLE001 - TensorRT's binding would swallow it: keep it for check()
            log.error("calibration batch %d failed: %s", self.served + 1, exc)
            self.error = exc
            return None

    def read_calibration_cache(self) -> bytes | None:
        if not self.read_cache or not self.cache_path.is_file():
            return None
        try:
            return retarget_cache_header(self.cache_path.read_bytes(), self.trt_version)
        except Exception as exc:  # noqa: BLE001 - same as get_batch
            log.error("cannot read %s: %s", self.cache_path, exc)
            self.error = exc
            return None

    def write_calibration_cache(self, cache: Any) -> None:
        try:
            with atomic_path(self.cache_path) as tmp:
                tmp.write_bytes(bytes(cache))
        except Exception as exc:  # noqa: BLE001 - same as get_batch
            log.error("cannot write %s: %s", self.cache_path, exc)
            self.error = exc

    def check(self) -> None:
        """After the build: raise what went wrong inside a callback, or an empty calibration."""
        if self.error is not None:
            raise EdgesegError(f"INT8 calibration failed: {self.error}") from self.error
        if self.images is not None and self.served == 0:
            raise EdgesegError("INT8 calibration read no batch: TensorRT built without calibrating")

    def free(self) -> None:
        """Release the device buffer and the stream."""
        if self.buffer is not None:
            self.buffer.free()
            self.buffer = None
        if self.stream is not None:
            self.cuda.destroy_stream(self.stream)
            self.stream = None


def make_calibrator(trt: Any, feeder: CalibrationFeeder) -> Any:
    """An ``IInt8EntropyCalibrator2`` that forwards every callback to ``feeder``."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return feeder.get_batch_size()

        def get_batch(self, names: list[str]) -> list[int] | None:
            return feeder.get_batch(names)

        def read_calibration_cache(self) -> bytes | None:
            return feeder.read_calibration_cache()

        def write_calibration_cache(self, cache: Any) -> None:
            feeder.write_calibration_cache(cache)

    return EntropyCalibrator()
