"""CRF post-processing: quality (no CRF / ConvCRF / dense CRF) and latency per implementation.

Quality: synthetic val scenes with a deliberately weak "model" (the ground truth blurred to 1/8 resolution
with smooth noise, :func:`edgeseg.crf.quality.weak_logits`): mIoU, pixel accuracy and boundary F-score (2 px
tolerance) with no CRF, ConvCRF (torch, fp32) and the dense CRF (pydensecrf2), all with the same parameters.
Latency: 512×1024, 19 classes, 5 iterations, median of ``--repeats``: dense CRF (CPU), ConvCRF torch CPU,
ConvCRF ONNX Runtime CPU (the exported ``crf.onnx``), and where torch has a GPU, ConvCRF torch CUDA fp32 and
fp16 (CUDA-event timed). Writes ``benchmarks/results/crf.json`` (``crf_cuda.json`` when a GPU took part).

    python benchmarks/crf.py [--quality-images 20] [--repeats 5] [--filter-size 7] [--blur 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeseg.cli.args import input_size
from edgeseg.crf.convcrf import ConvCRF
from edgeseg.crf.params import CRFParams
from edgeseg.crf.quality import weak_logits
from edgeseg.data.synthetic import CLASSES, VAL_SEED0, render_scene
from edgeseg.export.crf import CRFGraph
from edgeseg.export.onnx_export import export_module
from edgeseg.fileio import write_text_atomic
from edgeseg.metrics import BoundaryFScore, ConfusionMatrix, scores_from_confusion
from edgeseg.progress import Progress
from edgeseg.runtime.bundle import INPUT_NAME, LOGITS
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.crf")
RESULTS = Path(__file__).resolve().parent / "results"


def convcrf_labels(crf: ConvCRF, logits: np.ndarray, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = crf(torch.from_numpy(logits)[None], torch.from_numpy(image).permute(2, 0, 1)[None].float())
    return out[0].argmax(0).numpy().astype(np.uint8)


def quality(params: CRFParams, images: int, size: tuple[int, int], seed: int) -> dict:
    from edgeseg.runtime.dense_crf import dense_crf

    n = len(CLASSES)
    methods = {"none": None, "convcrf": ConvCRF(n, params).eval(), "dense": "dense"}
    cms = {m: ConfusionMatrix(n) for m in methods}
    bfs = {m: BoundaryFScore() for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    rng = np.random.default_rng(seed)
    bar = Progress(images, "CRF quality")
    for i in range(images):
        image, labels = render_scene(VAL_SEED0 + i, size)
        logits = weak_logits(labels, n, rng)
        for name, method in methods.items():
            t0 = time.perf_counter()
            if method is None:
                pred = logits.argmax(0).astype(np.uint8)
            elif method == "dense":
                pred = dense_crf(logits, image, params)
            else:
                pred = convcrf_labels(method, logits, image)
            seconds[name] += time.perf_counter() - t0
            cms[name].update(pred, labels)
            bfs[name].update(pred, labels)
        bar.update(1)
    bar.close()
    out = {}
    for name in methods:
        s = scores_from_confusion(cms[name].matrix)
        out[name] = {"miou": round(100 * s["miou"], 2), "pixel_acc": round(100 * s["pixel_acc"], 2),
                     "boundary_f": round(100 * bfs[name].compute()["boundary_f"], 2),
                     "seconds_per_image": round(seconds[name] / images, 4)}
    return out


def _median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _cuda_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def latency(params: CRFParams, size: tuple[int, int], classes: int, repeats: int) -> list[dict]:
    import onnxruntime as ort

    from edgeseg.runtime.dense_crf import dense_crf

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, (size[0] // 64, size[1] // 64)).repeat(64, 0).repeat(64, 1).astype(np.uint8)
    logits = weak_logits(labels, classes, rng)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    rows = []

    def row(name: str, device: str, ms: float) -> None:
        rows.append({"implementation": name, "device": device, "median_ms": round(ms, 3)})
        log.info("%s on %s: %.1f ms", name, device, ms)

    row("dense CRF (pydensecrf2)", "cpu", _median_ms(lambda: dense_crf(logits, image, params), max(2, repeats // 2)))
    graph = CRFGraph(ConvCRF(classes, params)).eval()
    t_logits, t_image = torch.from_numpy(logits)[None], torch.from_numpy(image)[None]
    with torch.inference_mode():
        row("ConvCRF torch", "cpu", _median_ms(lambda: graph(t_logits, t_image), repeats))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crf.onnx"
        export_module(graph, path, {LOGITS: t_logits, INPUT_NAME: t_image}, ["labels"])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {LOGITS: logits[None], INPUT_NAME: image[None]}
        row("ConvCRF ONNX Runtime", "cpu", _median_ms(lambda: session.run(None, feed), repeats))
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for dtype in (torch.float32, torch.float16):
            g = CRFGraph(ConvCRF(classes, params)).eval().cuda().to(dtype)
            gl, gi = t_logits.cuda().to(dtype), t_image.cuda()
            with torch.inference_mode():
                row(f"ConvCRF torch {'fp16' if dtype == torch.float16 else 'fp32'}", name,
                    _cuda_ms(lambda g=g, gl=gl, gi=gi: g(gl, gi), repeats * 4))
    dense_ms = rows[0]["median_ms"]
    for r in rows:
        r["speedup_vs_dense_cpu"] = round(dense_ms / r["median_ms"], 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality-images", type=int, default=20)
    parser.add_argument("--quality-size", type=input_size, default=(256, 512))
    parser.add_argument("--size", type=input_size, default=(512, 1024), help="latency input (default 512x1024)")
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--filter-size", type=int, default=7)
    parser.add_argument("--blur", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    params = CRFParams(filter_size=args.filter_size, blur=args.blur, iterations=args.iterations).validate()
    scores = quality(params, args.quality_images, args.quality_size, args.seed)
    timings = latency(params, args.size, args.classes, args.repeats)
    env = collect_environment()
    result = {"benchmark": "crf", "params": params.to_dict(),
              "quality": {"data": f"{args.quality_images} synthetic val scenes at "
                                  f"{'x'.join(map(str, args.quality_size))}",
                          "model": "weak_logits: ground truth blurred to 1/8 with smooth noise", "scores": scores},
              "latency": {"input": f"{'x'.join(map(str, args.size))}, {args.classes} classes", "rows": timings},
              "environment": env}
    kind = "crf_cuda" if torch.cuda.is_available() else "crf"
    write_text_atomic(args.out or RESULTS / f"{kind}.json", json.dumps(result, indent=2) + "\n")
    print(render_table(("CRF", "mIoU", "pixel acc", "boundary F", "s/image"),
                       [(k, f"{v['miou']:.2f}", f"{v['pixel_acc']:.2f}", f"{v['boundary_f']:.2f}",
                         f"{v['seconds_per_image']:.3f}") for k, v in scores.items()], right=(1, 2, 3, 4)))
    print()
    print(render_table(("implementation", "device", "median ms", "vs dense CPU"),
                       [(r["implementation"], r["device"], f"{r['median_ms']:.1f}", f"{r['speedup_vs_dense_cpu']}x")
                        for r in timings], right=(2, 3)))
    print(f"\n{result['latency']['input']}, {params.iterations} iterations, filter {params.filter_size}, "
          f"blur {params.blur}; {env['cpu']}, {env['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
