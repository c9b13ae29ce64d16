"""A two-class ONNX "model" whose right answer is known: a pixel is ``bright`` (1) when the mean of its three
channels exceeds a threshold. With labels made by the same rule, mIoU is exactly 1 at threshold 127, and
at any other threshold it is what numpy computes by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgeseg.runtime.bundle import Bundle, tensor_specs
from edgeseg.runtime.manifest import CalibrationIdentity, CalibrationRecord, FileEntry, InputSpec, Manifest, ModelInfo

H, W = 8, 12
CLASSES = ["dark", "bright"]
PALETTE = [[20, 20, 20], [250, 250, 0]]


def threshold_onnx(path: Path, threshold: float, batch: int | str = 1) -> Path:
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f", "axes"], ["mean"], keepdims=0),
        helper.make_node("Greater", ["mean", "threshold"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["bright_f"], to=TensorProto.FLOAT),  # TensorRT: uint8 from float only
        helper.make_node("Cast", ["bright_f"], ["labels"], to=TensorProto.UINT8),
    ]
    inits = [numpy_helper.from_array(np.array([3], np.int64), "axes"),
             numpy_helper.from_array(np.array(threshold, np.float32), "threshold")]
    graph = helper.make_graph(nodes, "threshold",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, H, W, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [batch, H, W])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def reference_labels(image: np.ndarray, threshold: float) -> np.ndarray:
    return (image.astype(np.int64).sum(axis=2) > 3 * threshold).astype(np.uint8)


def make_threshold_bundle(root: Path, variants: dict[str, float] | None = None, batch: int | str = 1) -> Path:
    """A bundle with one ONNX per precision name: ``{"fp32": 127, "int8": 100}`` by default; ``batch`` is the
    static batch, or "batch" for a dynamic one."""
    variants = variants or {"fp32": 127.0, "int8": 100.0}
    root.mkdir(parents=True)
    inputs, outputs = tensor_specs(("image",), ("labels",), batch, (H, W), len(CLASSES))
    bundle = Bundle(root, Manifest(ModelInfo("tiny", list(CLASSES), palette=[list(c) for c in PALETTE]),
                                   InputSpec((H, W), batch), inputs=inputs, outputs=outputs))
    for precision, threshold in variants.items():
        name = "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"
        threshold_onnx(root / name, threshold, batch)
        bundle.add_file(name, "onnx", precision=precision)
    bundle.save()
    return root


def make_threshold_data(root: Path, count: int = 4) -> tuple[str, list[np.ndarray]]:
    """A ``folder:`` data spec whose labels follow the fp32 rule, and its images."""
    rng = np.random.default_rng(7)
    images = []
    for i in range(count):
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / f"f{i}.png")
        Image.fromarray(reference_labels(image, 127.0)).save(root / "labels" / f"f{i}.png")
        images.append(image)
    (root / "classes.txt").write_text("\n".join(f"{c} {r} {g} {b}" for c, (r, g, b) in zip(CLASSES, PALETTE)) + "\n")
    return f"folder:{root / 'images'},{root / 'labels'}", images


def write_video(path: Path, values: list[int], fps: float = 10.0, fourcc: str = "mp4v",
                size: tuple[int, int] = (H, W)) -> Path:
    """A video of flat grey frames of ``size``, one per value (OpenCV)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]))
    assert writer.isOpened()
    for value in values:
        writer.write(np.full((*size, 3), value, np.uint8))
    writer.release()
    return path


def read_report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def file_entries(files: dict) -> dict[str, FileEntry]:
    """Manifest file entries written as its JSON holds them (size and hash optional), read as a bundle reads
    them."""
    return {name: FileEntry.from_dict({"bytes": 1, "sha256": "0" * 64, **entry}) for name, entry in files.items()}


def calibration_record(onnx_sha256: str, input_size, images: int = 8) -> CalibrationRecord:
    """The manifest's calibration section for a cache made from the model with ``onnx_sha256`` at ``input_size``."""
    identity = CalibrationIdentity(onnx_sha256, "e" * 64, [int(v) for v in input_size], "10.3.0")
    return CalibrationRecord("percentile", images, identity)


def heavy_onnx(path: Path, weights_mib: float) -> Path:
    """The threshold model (at 127) with a MatMul over ``weights_mib`` MiB of float weights folded into its
    threshold (times zero): a model whose loaded size is known."""
    columns = max(1, int(weights_mib * 2**20 / 4 / (H * W * 3)))
    weights = np.random.default_rng(0).standard_normal((H * W * 3, columns)).astype(np.float32)
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["f", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "weights"], ["y"]),
             helper.make_node("ReduceSum", ["y"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["z", "threshold"], ["t"]),
             helper.make_node("ReduceMean", ["f", "axes"], ["mean"], keepdims=0),
             helper.make_node("Greater", ["mean", "t"], ["bright"]),
             helper.make_node("Cast", ["bright"], ["labels"], to=TensorProto.UINT8)]
    inits = [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array(127, np.float32), "threshold"),
             numpy_helper.from_array(np.array([3], np.int64), "axes")]
    graph = helper.make_graph(nodes, "heavy", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, H, W, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, H, W])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path
