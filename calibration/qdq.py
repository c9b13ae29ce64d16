"""INT8 Q/DQ models in the two layouts edgeseg writes, from one set of calibration ranges.

TensorRT target (the default): the float graph in FP16 with Q/DQ on the inputs of the weighted layers and on the
residual input of residual Adds, weights as int8 initializers, the logits heads and everything after them out
of INT8 (:mod:`edgeseg.calibration.qdq_placement` says where and why, :mod:`edgeseg.calibration.qdq_trt` writes
it). CPU target: onnxruntime's QDQ quantizer, uint8 activations with int8 weights and a Q/DQ pair on every
quantized node's output, the layout ONNX Runtime's x86 and ARM kernels run fastest (its QLinear fusions need
the output pair), the logits heads and after them left in float all the same. Tensor ranges are computed once
per calibration set and cached (JSON), so re-quantizing with other layers excluded during the sensitivity
search costs no new calibration.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from edgeseg.calibration.qdq_placement import name_nodes, plan_qdq
from edgeseg.calibration.qdq_trt import write_tensorrt_qdq
from edgeseg.calibration.readers import CalibrationSet
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.stdio import stdout_to_stderr

log = logging.getLogger(__name__)
METHODS = ("entropy", "percentile", "minmax")
TARGETS = ("tensorrt", "cpu")
QUANTIZERS = ("onnxruntime", "modelopt")
QUANTIZED_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]
CALIBRATED_OPS = [*QUANTIZED_OPS, "Add"]  # ranges for the inputs of these (and their outputs)


def _reader(calib: CalibrationSet, batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(calib.feeds(batch))

        def __len__(self) -> int:
            return len(calib.images) // batch

    return Reader()


def tail_nodes(model) -> list[str]:
    """Names of the logits heads (the weighted layers with no weighted layer after them) and of every node after
    them (final Resize, ArgMax, Cast, Softmax): kept out of INT8. Unnamed nodes are named first, in place."""
    name_nodes(model)
    return plan_qdq(model).tail


def graph_batch(model) -> int:
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.dim_value > 0 else 1


def quantize_qdq(fp32_path: str | Path, out_path: str | Path, calib: CalibrationSet, *, method: str = "percentile",
                 target: str = "tensorrt", exclude: list[str] | None = None, ranges_cache: str | Path,
                 percentile: float = 99.999, quantizer: str = "onnxruntime") -> dict:
    """Write the Q/DQ model; returns what was done (method, target, excluded nodes, quantized node count)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if quantizer == "modelopt":
        return _quantize_modelopt(fp32_path, out_path, calib, method=method, target=target, exclude=exclude)
    if quantizer not in QUANTIZERS:
        raise EdgesegError(f"unknown quantizer {quantizer!r}; choose {', '.join(QUANTIZERS)}")
    if method not in METHODS:
        raise EdgesegError(f"unknown calibration method {method!r}; choose {', '.join(METHODS)}")
    if target not in TARGETS:
        raise EdgesegError(f"unknown INT8 target {target!r}; choose {', '.join(TARGETS)}")
    model = onnx.load(str(fp32_path))
    batch = graph_batch(model)
    if len(calib.images) < batch:
        raise EdgesegError(f"{len(calib.images)} calibration images cannot fill one batch of {batch}")
    calibrate = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
                 "minmax": CalibrationMethod.MinMax}[method]
    if not Path(ranges_cache).is_file():
        with _quiet_onnxruntime():
            _calibrate(fp32_path, calib, batch, calibrate, ranges_cache, symmetric=target == "tensorrt",
                       percentile=percentile)
    done = {"method": method, "target": target, "calibration_images": len(calib.images),
            "calibration_source": calib.source}
    if target == "tensorrt":
        name_nodes(model)
        plan = plan_qdq(model, exclude)
        info = write_tensorrt_qdq(model, plan, tensor_amax(ranges_cache), out_path)
        done.update(excluded=sorted(set(plan.tail) | set(exclude or [])), **info)
    else:
        excluded = sorted(set(tail_nodes(model)) | set(exclude or []))
        options = {"ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": False,
                   "CalibPercentile": percentile}
        with atomic_path(out_path) as tmp, _quiet_onnxruntime():
            quantize_static(str(fp32_path), str(tmp), _reader(calib, batch), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=QUANTIZED_OPS, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=excluded, calibrate_method=calibrate,
                            extra_options=options, calibration_cache_path=str(ranges_cache))
        done["excluded"] = excluded
    quantized = onnx.load(str(out_path))
    done["quantize_nodes"] = sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    return done


class _PreprocessAdvice(logging.Filter):
    """onnxruntime advises running its shape-inference pre-processing on every call; our graphs come from the
    exporter's optimizer already shape-inferred and folded, so the advice is noise in a progress log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_onnxruntime():
    """onnxruntime's quantization tools log advice and print progress with ``print``: the advice is dropped and
    the prints go to stderr, so stdout keeps only edgeseg's results (a table, or JSON)."""
    root, advice = logging.getLogger(), _PreprocessAdvice()
    root.addFilter(advice)
    try:
        with stdout_to_stderr():
            yield
    finally:
        root.removeFilter(advice)


def _calibrate(fp32_path, calib: CalibrationSet, batch: int, method, ranges_cache, *,
               symmetric: bool, percentile: float) -> None:
    """Collect tensor ranges once and save them where ``quantize_static`` finds them.

    Done here rather than inside ``quantize_static`` because that one runs the entropy calibrator with 128
    histogram bins and 128 quantized bins, which leaves its threshold search a single candidate: the full
    range, i.e. min-max. TensorRT's entropy calibration uses 2048 bins folded to 128 levels; so do we.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    options = {"symmetric": symmetric}
    if method == CalibrationMethod.Entropy:
        options.update(num_bins=2048, num_quantized_bins=128)
    elif method == CalibrationMethod.Percentile:
        options.update(num_bins=2048, percentile=percentile)
    with tempfile.TemporaryDirectory(prefix="edgeseg-calib-") as tmp:
        calibrator = create_calibrator(Path(fp32_path), CALIBRATED_OPS,
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=method, extra_options=options)
        calibrator.collect_data(_reader(calib, batch))
        save_tensors_data(calibrator.compute_data(), ranges_cache)


def _quantize_modelopt(fp32_path, out_path, calib: CalibrationSet, *, method: str, target: str,
                       exclude: list[str] | None) -> dict:
    """NVIDIA Model Optimizer's ONNX PTQ (``modelopt.onnx.quantization.quantize``), TensorRT rules built in.
    Written against its documented API; not run in edgeseg's CI (the package is not installed there)."""
    import onnx

    try:
        from modelopt.onnx.quantization import quantize as modelopt_quantize
    except ImportError:
        raise EdgesegError("--quantizer modelopt needs NVIDIA Model Optimizer: "
                           "pip install 'nvidia-modelopt[onnx]'") from None
    if target != "tensorrt":
        raise EdgesegError("--quantizer modelopt writes TensorRT Q/DQ only; use the onnxruntime quantizer for cpu")
    methods = {"entropy": "entropy", "minmax": "max"}
    if method not in methods:
        raise EdgesegError(f"modelopt calibrates with entropy or minmax, not {method!r}")
    model = onnx.load(str(fp32_path))
    excluded = sorted(set(tail_nodes(model)) | set(exclude or []))
    data = next(calib.feeds(len(calib.images)))
    with atomic_path(out_path) as tmp:
        modelopt_quantize(str(fp32_path), quantize_mode="int8", calibration_data=data,
                          calibration_method=methods[method], calibration_eps=["cpu"], nodes_to_exclude=excluded,
                          output_path=str(tmp))
    quantized = onnx.load(str(out_path))
    return {"method": method, "target": target, "quantizer": "modelopt", "excluded": excluded,
            "quantize_nodes": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node),
            "calibration_images": len(calib.images), "calibration_source": calib.source}


def amax_from_qdq(path: str | Path) -> dict[str, float]:
    """``{tensor: amax}`` read back from a Q/DQ model's activation QuantizeLinear scales (amax = 127·scale):
    the TensorRT cache for a quantizer that keeps no range file."""
    import onnx

    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    amax = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and inits.get(node.input[1]) is not None:
            scale = inits[node.input[1]]
            if scale.size == 1:
                amax[node.input[0]] = float(scale.reshape(()) * 127.0)
    return amax


def tensor_amax(ranges_cache: str | Path) -> dict[str, float]:
    """``{tensor: max |value|}`` from the cached calibration ranges (for the TensorRT calibration cache)."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(ranges_cache)
    amax = {}
    for name, tensor in data.data.items():
        low, high = tensor.range_value
        amax[name] = float(max(np.abs(np.asarray(low)).max(), np.abs(np.asarray(high)).max()))
    return amax


__all__ = ["METHODS", "QUANTIZERS", "TARGETS", "amax_from_qdq", "quantize_qdq", "tail_nodes", "tensor_amax"]
