"""edgeseg's TensorRT Q/DQ model against NVIDIA Model Optimizer's ONNX PTQ on the trained synthetic checkpoints.

Per model (exported by edgeseg at ``--size``): the same calibration images (synthetic train scenes) go to both
tools (edgeseg: ``quantize_qdq``, target tensorrt, percentile ranges; Model Optimizer:
``modelopt.onnx.quantization.quantize``, int8, its default entropy calibration on ONNX Runtime's CPU provider,
FP16 elsewhere by its default ``high_precision_dtype``); both files are scored by ONNX Runtime's CPU provider on
the same synthetic val scenes. Reported: which inputs (consumer node, input index) each tool quantizes, the
differences grouped into classes with the reason for each, file sizes, mIoU drops against FP32, and which op
types ONNX Runtime's CPU provider ran in float32 for want of a float16 kernel. Writes
``benchmarks/results/qdq_vs_modelopt.json``; when Model Optimizer cannot be imported or run, its error line is
recorded and printed instead of its figures.

    python benchmarks/qdq_vs_modelopt.py [--models bisenetv2 lednet dfanet_b] [--size 128x256]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeseg.calibration.gate import score_onnx
from edgeseg.calibration.qdq import quantize_qdq
from edgeseg.calibration.qdq_placement import WEIGHTED, name_nodes, plan_qdq
from edgeseg.calibration.readers import load_calibration_set
from edgeseg.cli.args import input_size
from edgeseg.data import open_dataset
from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import ExportOptions
from edgeseg.fileio import write_text_atomic
from edgeseg.metrics import miou_drop_points
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table
from edgeseg.workflow import export_with_variants

log = logging.getLogger("benchmarks.qdq_vs_modelopt")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "qdq_vs_modelopt.json"

REASONS = {
    "logits head": "edgeseg keeps the logits heads and everything after them out of INT8: labels never come from "
                   "int8-rounded inputs of the logits; the head is a small share of the FLOPs",
    "conv-branch input of a residual Add": "a Q/DQ on the input TensorRT fuses into the convolution separates "
                                           "conv from add (Model Optimizer removes these too)",
    "residual input of a residual Add": "edgeseg quantizes it so TensorRT fuses conv + add in INT8; Model "
                                        "Optimizer's conv-backbone patterns did not match this Add",
    "Add without a conv branch": "no convolution to fuse the Add into: INT8 inputs buy no kernel, only rounding; "
                                 "the Add runs in FP16",
    "pooling input": "TensorRT moves a Q across Max/AveragePool by itself (quantization commutes with them), so "
                     "the following layer's input Q/DQ already makes the pool INT8",
    "pointwise or data-movement input": "Mul, Concat, Resize, BatchNormalization...: no INT8 kernel worth the "
                                        "extra rounding; these layers run FP16",
    "convolution Model Optimizer skips": "Model Optimizer leaves convolutions with fewer than 16 channels (or "
                                         "grouped ones it deems slow) in FP16; edgeseg quantizes every body "
                                         "convolution (they sit inside INT8 chains, where FP16 would add "
                                         "reformats)",
    "GEMV Model Optimizer skips": "Model Optimizer leaves GEMV-shaped Gemm/MatMul (one row: DFANet's attention "
                                  "FCs after global pooling) in FP16; edgeseg quantizes them (tiny layers either way)",
    "other": "not classified",
}


def _clear_tensorrt_stub() -> None:
    """A ``tensorrt`` without ``Logger`` (a namespace left by type stubs) makes Model Optimizer believe TensorRT is
    installed and call into it; hide it so Model Optimizer takes its no-TensorRT path."""
    try:
        import tensorrt
    except ImportError:
        return
    if not hasattr(tensorrt, "Logger"):
        sys.modules["tensorrt"] = None  # type: ignore[assignment]


def _modelopt_worker(fp32: str, out: str, images: str) -> int:
    """Run in a child process: Model Optimizer patches onnxruntime's quantization modules when it runs, which
    breaks edgeseg's own calibration afterwards in the same process. Prints one JSON line."""
    try:
        _clear_tensorrt_stub()
        from modelopt import __version__ as version
        from modelopt.onnx.quantization import quantize
    except Exception as exc:  # ImportError, or a dependency failing at import
        print(json.dumps({"error": f"import modelopt.onnx.quantization: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0]}"}))
        return 0
    try:
        with contextlib.redirect_stdout(sys.stderr):  # it prints calibration progress
            quantize(fp32, quantize_mode="int8", calibration_data={"image": np.load(images)},
                     calibration_eps=["cpu"], output_path=out, log_level="WARNING")
    except Exception as exc:
        line = str(exc).splitlines()[0] if str(exc) else ""
        print(json.dumps({"version": version, "error": f"{type(exc).__name__}: {line}"}))
        return 0
    print(json.dumps({"version": version, "calibration": "entropy (its default), ONNX Runtime CPU provider"}))
    return 0


def run_modelopt(fp32: Path, out: Path, images: np.ndarray, timeout: float) -> dict:
    """Model Optimizer's int8 PTQ on the CPU, in a child process; ``{"error": line}`` when it cannot run."""
    import subprocess

    data = out.with_suffix(".calib.npy")
    np.save(data, images)
    try:
        done = subprocess.run([sys.executable, __file__, "--modelopt-worker", str(fp32), str(out), str(data)],
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"Model Optimizer did not finish in {timeout:.0f} s (its entropy calibration on this CPU)"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"Model Optimizer's process exited with {done.returncode} and no result"}
    return json.loads(lines[-1])


def quantized_inputs(model) -> dict[tuple[str, int], str]:
    """``{(consumer node, input index): "weight" | "activation"}`` for every input that reads a
    DequantizeLinear output (through Casts)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    initializers = {i.name for i in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Cast"):
            continue
        for index, tensor in enumerate(node.input):
            source = producers.get(tensor)
            while source is not None and source.op_type == "Cast":
                source = producers.get(source.input[0])
            if source is not None and source.op_type == "DequantizeLinear":
                weight = source.input[0] in initializers or (
                    source.input[0] in producers and producers[source.input[0]].input[0] in initializers)
                found[(node.name, index)] = "weight" if weight else "activation"
    return found


def classify(key: tuple[str, int], nodes: dict, plan, residual_inputs: dict) -> str:
    """The difference class of an input quantized by one tool only."""
    name, index = key
    node = nodes.get(name)
    if node is None:
        return "other"
    if name in set(plan.tail):
        return "logits head"
    if node.op_type == "Add":
        if name in residual_inputs:
            residual = residual_inputs[name] == index
            return "residual input of a residual Add" if residual else "conv-branch input of a residual Add"
        return "Add without a conv branch"
    if node.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool"):
        return "pooling input"
    if node.op_type in ("Gemm", "MatMul"):
        return "GEMV Model Optimizer skips"
    if node.op_type in WEIGHTED:
        return "convolution Model Optimizer skips"
    return "pointwise or data-movement input"


def ort_float32_ops(path: Path) -> list[str]:
    """Op types that ONNX Runtime's CPU provider runs in float32 between Casts it inserts (no float16 kernel)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    inserted = {n.output[0] for n in model.graph.node if n.op_type == "Cast" and n.name.startswith("Inserted")}
    return sorted({n.op_type for n in model.graph.node if any(i in inserted for i in n.input)})


def compare(name: str, args, tmp: Path, source) -> dict:
    import onnx

    bundle = export_with_variants(tmp / name, checkpoint=str(args.checkpoints / f"{name}.pt"),
                                  options=ExportOptions(input_size=args.size))
    fp32 = bundle.root / "model.onnx"
    classes = len(bundle.model["classes"])
    calib = load_calibration_set(f"synthetic:{args.calib_size}", args.size, count=args.calib_size)
    ours, theirs = tmp / f"{name}.int8.onnx", tmp / f"{name}.modelopt.onnx"
    log.info("== %s: edgeseg", name)
    quantize_qdq(fp32, ours, calib, ranges_cache=tmp / f"{name}.ranges.json")
    log.info("== %s: Model Optimizer", name)
    modelopt = run_modelopt(fp32, theirs, np.stack(calib.images), args.modelopt_timeout)
    log.info("== %s: scoring", name)
    reference, predictions = score_onnx(fp32, source, classes, max_images=args.eval_images)
    row = {"model": name, "input_size": list(args.size), "fp32_miou": reference["miou"],
           "bytes": {"fp32": fp32.stat().st_size, "edgeseg": ours.stat().st_size}, "modelopt": modelopt}
    scored = {"edgeseg": ours} if "error" in modelopt else {"edgeseg": ours, "modelopt": theirs}
    for tool, path in list(scored.items()):
        try:
            scores, _ = score_onnx(path, source, classes, max_images=args.eval_images, reference=predictions)
        except EdgesegError as exc:  # a file ONNX Runtime's CPU provider refuses to load
            if tool == "edgeseg":
                raise
            modelopt["error"] = f"scoring on ONNX Runtime CPU: {str(exc).splitlines()[0]}"
            row["bytes"]["modelopt"] = theirs.stat().st_size
            del scored[tool]
            continue
        row[tool] = {"miou": scores["miou"], "miou_drop": miou_drop_points(reference["miou"], scores["miou"]),
                     "label_agreement": scores["label_agreement"]}
    row["edgeseg"]["onnxruntime_cpu_float32_ops"] = ort_float32_ops(ours)
    model32 = onnx.load(str(fp32))
    name_nodes(model32)
    plan = plan_qdq(model32)
    nodes = {n.name: n for n in model32.graph.node}
    positions = {"edgeseg": quantized_inputs(onnx.load(str(ours)))}
    if theirs.is_file():  # its positions, even when ONNX Runtime cannot run it
        row["bytes"]["modelopt"] = theirs.stat().st_size
        positions["modelopt"] = quantized_inputs(onnx.load(str(theirs)))
    if "modelopt" in scored:
        row["modelopt"]["onnxruntime_cpu_float32_ops"] = ort_float32_ops(theirs)
    for tool, found in positions.items():
        counts = collections.Counter(f"{nodes[k[0]].op_type if k[0] in nodes else '?'} {kind}"
                                     for k, kind in found.items())
        row[tool]["quantized_inputs"] = dict(sorted(counts.items()))
        row[tool]["quantized_input_count"] = len(found)
    if "modelopt" in positions:
        row["differences"] = {}
        for label, keys in (("modelopt_only", set(positions["modelopt"]) - set(positions["edgeseg"])),
                            ("edgeseg_only", set(positions["edgeseg"]) - set(positions["modelopt"]))):
            groups: dict[str, list[str]] = collections.defaultdict(list)
            for key in sorted(keys):
                groups[classify(key, nodes, plan, plan.residual_adds)].append(f"{key[0]}[{key[1]}]")
            row["differences"][label] = {cls: {"count": len(v), "reason": REASONS[cls], "inputs": v}
                                         for cls, v in sorted(groups.items())}
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--modelopt-worker"]:
        return _modelopt_worker(*argv[1:4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2", "lednet", "dfanet_b"])
    parser.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints")
    parser.add_argument("--size", type=input_size, default=(128, 256), metavar="HxW")  # CPU time: 2 shared cores
    parser.add_argument("--modelopt-timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    source = open_dataset("synthetic", "val")
    kept = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    rows: list[dict] = [r for r in kept if r["model"] not in args.models]  # rows of models not rerun stay
    result = {"benchmark": "qdq_vs_modelopt", "eval": f"{args.eval_images} synthetic val scenes",
              "calibration": f"{args.calib_size} synthetic train scenes, the same for both tools",
              "scored_with": "onnxruntime CPU provider, each file as written", "reasons": REASONS,
              "environment": collect_environment(), "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(compare(name, args, Path(tmp), source))
            write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")  # each model as it is done
    header = ("model", "fp32 mIoU", "edgeseg drop", "modelopt drop", "fp32 MB", "edgeseg MB", "modelopt MB",
              "inputs edgeseg", "inputs modelopt", "modelopt only", "edgeseg only")
    lines = []
    for r in rows:
        mo, diff = r["modelopt"], r.get("differences", {})
        failed = "error" in mo
        lines.append((r["model"], f"{100 * r['fp32_miou']:.2f}", f"{r['edgeseg']['miou_drop']:.2f}",
                      "error" if failed else f"{mo['miou_drop']:.2f}", f"{r['bytes']['fp32'] / 1e6:.2f}",
                      f"{r['bytes']['edgeseg'] / 1e6:.2f}",
                      f"{r['bytes']['modelopt'] / 1e6:.2f}" if "modelopt" in r["bytes"] else "-",
                      str(r["edgeseg"]["quantized_input_count"]),
                      str(mo.get("quantized_input_count", "-")),
                      str(sum(g["count"] for g in diff["modelopt_only"].values())) if diff else "-",
                      str(sum(g["count"] for g in diff["edgeseg_only"].values())) if diff else "-"))
    print(render_table(header, lines))
    for r in rows:
        if "error" in r["modelopt"]:
            print(f"{r['model']}: Model Optimizer failed: {r['modelopt']['error']}")
        for label, groups in r.get("differences", {}).items():
            for cls, group in groups.items():
                print(f"{r['model']} {label.replace('_', ' ')}: {group['count']} × {cls}: {group['reason']}")
    env = result["environment"]
    print(f"\n{env['cpu']}, {env['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
