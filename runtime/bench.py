"""``edgeseg bench``: what each engine costs (latency, throughput, memory, size) and what it loses (mIoU).

For every target (artifact × backend × precision, see :mod:`edgeseg.runtime.bench_plan`):

1. **Latency**: ``warmup`` untimed then ``iters`` timed passes of preprocess (resize the frames to the deploy
   size, batch) → ``runner.infer`` → postprocess (labels back to the frame size). The runner times inference
   itself (``perf_counter`` on a CPU, device events on a GPU), and splits it into transfer and compute where it
   can; the host stages are timed with ``perf_counter``.
2. **Throughput**: ``iters`` inferences of one ready batch with ``streams`` of them in flight (one thread
   each), frames per second over the wall time.
3. **Memory**: peak host RSS while the target was loaded and measured, and the increase over its own
   baseline, taken right before the target loads, after the memory earlier targets freed was handed back. The
   first target of each backend is loaded and run once, unmeasured, before its baseline (:func:`warm_backend`):
   the backend's one-time cost (its library, its global state) then counts in no row, so a row's figure does
   not depend on the rows measured before it. Device memory where the runner reports it.
4. **Accuracy** (with ``data``): mIoU, per-class IoU, pixel accuracy and the confusion matrix at the
   dataset's resolution, with the same code for every backend; the first ``overlays`` predictions are kept for
   the report, and an fp16/int8 target's label agreement with its fp32 reference over the split is counted.
5. **Noise**: the load on the machine while the target was timed (:class:`~edgeseg.runtime.cpuload.CpuLoad`);
   a row whose latencies vary too much or that ran on a loaded machine is logged as a warning
   (:func:`~edgeseg.runtime.stats.noise_notes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeseg.data.base import SegmentationSource
from edgeseg.data.geometry import DEFAULT_RESIZE, labels_to_frame
from edgeseg.errors import EdgesegError
from edgeseg.meta import default_palette
from edgeseg.metrics import scores_from_confusion
from edgeseg.progress import Progress, end_live_line
from edgeseg.runtime.agreement import AgreementCounter, ReferenceLabels
from edgeseg.runtime.bench_plan import Target, plan_targets
from edgeseg.runtime.bundle import open_bundle
from edgeseg.runtime.bundle_facts import quantization_facts, source_identity
from edgeseg.runtime.cpuload import CpuLoad
from edgeseg.runtime.environment import collect_environment
from edgeseg.runtime.evaluate import evaluate_runner
from edgeseg.runtime.feeds import image_geometry, make_feed, specs_take_depth
from edgeseg.runtime.load import load_runner
from edgeseg.runtime.memory import PeakMemory
from edgeseg.runtime.runner import Runner
from edgeseg.runtime.stats import latency_stats, noise_notes, throughput_fps

log = logging.getLogger(__name__)


@dataclass
class BenchSettings:
    backend: str = "auto"
    precision: str = "all"
    data: str | None = None
    split: str = "val"
    max_images: int | None = None
    warmup: int = 10
    iters: int = 100
    batch: int | None = None  # None: the model's static batch, else 1
    streams: int = 1
    threads: int | None = None
    providers: str = "cpu"  # ONNX Runtime execution providers: cpu, cuda, tensorrt, auto
    device: str = "cpu"  # where the torch backend runs: cpu, cuda, cuda:N
    overlays: int = 3
    progress: bool = True

    def validate(self) -> None:
        for name in ("iters", "streams"):
            if getattr(self, name) < 1:
                raise EdgesegError(f"--{name} must be at least 1")
        if self.warmup < 0 or self.overlays < 0:
            raise EdgesegError("--warmup and --overlays cannot be negative")


@dataclass
class BenchResult:
    """Everything one ``bench`` run measured; :mod:`edgeseg.runtime.report` turns it into files."""

    environment: dict
    settings: dict
    rows: list[dict]
    samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (image, label) for overlays
    predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)  # row id → label maps of the samples


def _batch_and_size(runner: Runner, wanted: int | None) -> tuple[int, tuple[int, int]]:
    static, size = image_geometry(runner.name, runner.inputs())
    if static is not None and wanted not in (None, static):
        raise EdgesegError(f"{runner.name} was exported with batch {static}; re-export with --batch {wanted} "
                           f"or --dynamic-batch to bench batch {wanted}")
    return static or wanted or 1, size


def _timing_depths(runner: Runner, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Seeded random depth maps (0-10 m) at each frame's size for an RGB-D runner's timing runs; else none."""
    if not specs_take_depth(runner.inputs()):
        return []
    rng = np.random.default_rng(0)
    return [rng.uniform(0.0, 10.0, frame.shape[:2]).astype(np.float32) for frame in frames]


def measure_latency(runner: Runner, frames: Sequence[np.ndarray], *, batch: int, size: tuple[int, int],
                    warmup: int, iters: int, progress: Progress | None = None,
                    mode: str = DEFAULT_RESIZE, step: float = 1.0) -> dict[str, list[float]]:
    """Per-iteration milliseconds: ``latency`` (the runner's), ``preprocess``, ``inference``, ``transfer``
    (only when the runner reports h2d/d2h), ``postprocess`` and ``end_to_end``. ``progress`` advances by
    ``step`` per timed iteration (warm-up iterations only show as its phase)."""
    depths = _timing_depths(runner, frames)
    specs = runner.inputs()
    samples: dict[str, list[float]] = {k: [] for k in
                                       ("latency", "preprocess", "transfer", "inference", "postprocess", "end_to_end")}
    for i in range(warmup + iters):
        picks = [(i * batch + j) % len(frames) for j in range(batch)]
        chosen = [frames[k] for k in picks]
        t0 = time.perf_counter()
        feed = make_feed(specs, chosen, size, [depths[k] for k in picks] if depths else None, mode)
        t1 = time.perf_counter()
        out = runner.infer(feed)
        t2 = time.perf_counter()
        if "labels" not in out:
            raise EdgesegError(f"{runner.name} has no 'labels' output (outputs: {', '.join(out)})")
        for labels, frame in zip(out["labels"], chosen):
            labels_to_frame(np.asarray(labels, np.uint8), frame.shape[:2], mode)
        t3 = time.perf_counter()
        if i >= warmup:
            stages = runner.last_stages_ms
            samples["latency"].append(float(runner.last_latency_ms))
            samples["preprocess"].append((t1 - t0) * 1e3)
            samples["inference"].append(float(stages.get("compute", runner.last_latency_ms)))
            if "h2d" in stages or "d2h" in stages:
                samples["transfer"].append(float(stages.get("h2d", 0.0) + stages.get("d2h", 0.0)))
            samples["postprocess"].append((t3 - t2) * 1e3)
            samples["end_to_end"].append((t3 - t0) * 1e3)
        if progress is not None:
            progress.update(step if i >= warmup else 0, phase="latency" if i >= warmup else "warmup")
    return samples


def measure_throughput(runner: Runner, feed: dict[str, np.ndarray], *, streams: int, iters: int,
                       progress: Progress | None = None, step: float = 1.0) -> dict:
    """Frames per second of ``iters`` inferences with ``streams`` in flight (one host thread each); ``progress``
    advances by ``step`` per inference."""
    frames_per_call = next(iter(feed.values())).shape[0]
    counts = [iters // streams + (1 if k < iters % streams else 0) for k in range(streams)]

    def work(count: int) -> None:
        for _ in range(count):
            runner.infer(feed, check=False)
            if progress is not None:
                progress.update(step, phase="throughput")

    t0 = time.perf_counter()
    if streams == 1:
        work(counts[0])
    else:
        with ThreadPoolExecutor(streams, thread_name_prefix="bench-stream") as pool:
            list(pool.map(work, counts))
    seconds = time.perf_counter() - t0
    frames = sum(counts) * frames_per_call
    return {"streams": streams, "frames": frames, "seconds": round(seconds, 4),
            "fps": round(throughput_fps(frames, seconds), 2), "method": "host threads"}


def _timing_frames(source: SegmentationSource | None, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Real frames at their own resolution when there is data, else seeded noise at the deploy size."""
    if source is not None and len(source):
        return [source[i][0] for i in range(min(count, len(source)))]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def _resize_mode(target: Target) -> str:
    """How host code fits frames for the target's bundle (a lone ONNX file: the default; a ``--frame-size``
    bundle: stretched to its frame size, the graph places them)."""
    return open_bundle(target.bundle).host_resize if target.bundle is not None else DEFAULT_RESIZE


def _model_classes(target: Target, source: SegmentationSource | None) -> tuple[list[str], list]:
    if target.bundle is not None:
        model = open_bundle(target.bundle).model
        classes = list(model.classes)
        palette = [list(c) for c in model.palette or default_palette(len(classes))]
        if source is not None and len(classes) != source.num_classes:
            raise EdgesegError(f"{target.artifact} predicts {len(classes)} classes, {source.name} has "
                               f"{source.num_classes}")
        return classes, palette
    if source is not None:
        return list(source.classes), [list(c) for c in source.palette]
    return [], []


def _round_all(values: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items()}


def _bundle_facts(target: Target) -> dict:
    """The row fields read from the target's bundle manifest: ``source`` and ``quantization``."""
    if target.bundle is None:
        return {"source": None, "quantization": None}
    bundle = open_bundle(target.bundle)
    return {"source": source_identity(bundle),
            "quantization": quantization_facts(bundle, target.file.name, target.precision)}


def _load(target: Target, settings: BenchSettings) -> Runner:
    ort_providers = settings.providers if target.backend == "onnxruntime" else "cpu"  # ONNX Runtime's alone
    return load_runner(target.file, target.backend, precision=target.precision, providers=ort_providers,
                       threads=settings.threads, device=settings.device, streams=settings.streams)


def warm_backend(target: Target, settings: BenchSettings, source: SegmentationSource | None) -> None:
    """Load ``target`` and take it once through every measurement (one timed pass, one throughput pass, one
    scored image), unmeasured, then let it go: what its backend and the measuring code set up once per
    process (libraries, global state, a CUDA context, modules imported on first use) is then in place before
    any row's memory baseline."""
    mode = _resize_mode(target)
    with _load(target, settings) as runner:
        batch, size = _batch_and_size(runner, settings.batch)
        frames = _timing_frames(source, max(batch, 4), size)
        measure_latency(runner, frames, batch=batch, size=size, warmup=0, iters=1, mode=mode)
        feed = make_feed(runner.inputs(), frames[:batch], size, _timing_depths(runner, frames[:batch]) or None, mode)
        measure_throughput(runner, feed, streams=settings.streams, iters=settings.streams)
        if source is not None:
            evaluate_runner(runner, source, num_classes=source.num_classes, max_images=1, mode=mode,
                            bgr=target.bundle is not None and open_bundle(target.bundle).frame_bgr)


def bench_target(target: Target, settings: BenchSettings, source: SegmentationSource | None,
                 keep: int = 0, bar: Progress | None = None,
                 on_prediction: Callable[[int, np.ndarray], None] | None = None) -> tuple[dict, list[np.ndarray]]:
    """Measure one target; returns its report row and the first ``keep`` predicted label maps. ``bar`` counts
    the timed iterations the user asked for (``settings.iters`` per target; each is one latency and one
    throughput inference, so each advances it by half): the whole bench's, else one of this target's own.
    ``on_prediction(index, labels)`` also sees every prediction of the accuracy pass."""
    classes, palette = _model_classes(target, source)
    mode = _resize_mode(target)
    kept: list[np.ndarray] = []
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        runner = _load(target, settings)
        with runner:
            load_s = time.perf_counter() - t0
            batch, size = _batch_and_size(runner, settings.batch)
            frames = _timing_frames(source, max(batch, 4), size)
            own = bar is None
            if own:
                bar = Progress(settings.iters, f"bench {target.label}", enabled=settings.progress)
            assert bar is not None
            bar.postfix["engine"] = target.label
            try:
                with CpuLoad() as load:
                    samples = measure_latency(runner, frames, batch=batch, size=size, warmup=settings.warmup,
                                              iters=settings.iters, progress=bar, mode=mode, step=0.5)
                    depths = _timing_depths(runner, frames[:batch])
                    feed = make_feed(runner.inputs(), frames[:batch], size, depths or None, mode)
                    throughput = measure_throughput(runner, feed, streams=settings.streams, iters=settings.iters,
                                                    progress=bar, step=0.5)
            finally:
                if own:
                    bar.close()
            accuracy = None
            if source is not None:
                seen: list[int] = []

                def collect(index: int, labels: np.ndarray) -> None:
                    seen.append(index)
                    if index < keep:
                        kept.append(labels)
                    if on_prediction is not None:
                        on_prediction(index, labels)

                cm = evaluate_runner(runner, source, num_classes=len(classes), max_images=settings.max_images,
                                     progress=settings.progress, on_prediction=collect, mode=mode,
                                     bgr=target.bundle is not None and open_bundle(target.bundle).frame_bgr)
                scores = scores_from_confusion(cm.matrix)
                accuracy = {"data": settings.data, "split": settings.split, "images": len(seen),
                            "miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
                            "mean_acc": scores["mean_acc"], "per_class_iou": scores["per_class_iou"],
                            "confusion": np.asarray(cm.matrix, np.int64).tolist()}
            device_mib = runner.device_memory_mib()
            providers = runner.providers() if hasattr(runner, "providers") else []
            compute = runner.compute
            timing = "device events" if runner.times_itself else "perf_counter"
    stages = {k: (round(float(np.mean(v)), 4) if v else None) for k, v in samples.items()
              if k in ("preprocess", "transfer", "inference", "postprocess")}
    latency = _round_all(latency_stats(samples["latency"]))
    latency["samples"] = [round(v, 4) for v in samples["latency"]]
    end_to_end = _round_all(latency_stats(samples["end_to_end"]))
    row = {
        "model": target.model, "artifact": str(target.artifact), "file": target.file.name,
        "file_mib": round(target.file.stat().st_size / 2**20, 3), "backend": runner.backend,
        "precision": target.precision, "compute": compute, "providers": providers, "batch": batch,
        "input_size": list(size),
        "frames": "data" if source is not None else "noise", "load_s": round(load_s, 3), "timing": timing,
        "latency_ms": latency, "end_to_end_ms": end_to_end, "stages_ms": stages,
        "throughput": throughput, "end_to_end_fps": round(1e3 * batch / end_to_end["mean"], 2),
        "memory": {**memory.to_dict(), "device_peak_mib": None if device_mib is None else round(device_mib, 1)},
        "classes": classes, "palette": palette, "accuracy": accuracy, "load": load.to_dict(),
        **_bundle_facts(target),
    }
    return row, kept


def _reference_for(target: Target, references: list[tuple[Target, ReferenceLabels]]) -> ReferenceLabels | None:
    """The fp32 predictions an fp16/int8 target is compared with: the same artifact's fp32 on the same backend,
    else on ONNX Runtime, else on any backend (the rule the report's mIoU drop follows)."""
    same = [(t, r) for t, r in references if t.artifact == target.artifact]
    same.sort(key=lambda tr: (tr[0].backend != target.backend, tr[0].backend != "onnxruntime"))
    return same[0][1] if same else None


def _row_id(row: dict, taken: set[str]) -> str:
    base = f"{row['model']}-{row['precision']}-{row['backend']}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def run_bench(paths: Sequence[str], settings: BenchSettings) -> BenchResult:
    """Plan and measure every target; the source for accuracy is opened once and shared."""
    settings.validate()
    targets = plan_targets(paths, settings.backend, settings.precision,
                           torch_fp16=settings.device.startswith("cuda"))
    source = None
    if settings.data:
        from edgeseg.data import open_dataset

        source = open_dataset(settings.data, settings.split)
    keep = min(settings.overlays, len(source)) if source is not None else 0
    log.info("benchmarking %d target(s): %s", len(targets), "; ".join(t.label for t in targets))
    rows: list[dict] = []
    predictions: dict[str, list[np.ndarray]] = {}
    taken: set[str] = set()
    references: list[tuple[Target, ReferenceLabels]] = []  # the fp32 targets' predictions, for agreement
    warmed: set[str] = set()
    bar = Progress(len(targets) * settings.iters, f"bench ({len(targets)} engine{'s' * (len(targets) > 1)} × "
                   f"{settings.iters} iterations)", enabled=settings.progress)
    try:
        for target in targets:
            if target.backend not in warmed:
                warm_backend(target, settings, source)
                warmed.add(target.backend)
            row, kept = _bench_one(target, settings, source, keep, bar, taken, references)
            rows.append(row)
            predictions[row["id"]] = kept
    finally:
        bar.close()
    samples = [source[i] for i in range(keep)] if source is not None else []
    return BenchResult(collect_environment(), asdict(settings), rows, samples, predictions)


def _bench_one(target: Target, settings: BenchSettings, source, keep: int, bar: Progress, taken: set[str],
               references: list[tuple[Target, ReferenceLabels]]):
    """One target of :func:`run_bench` on the bench-wide ``bar``: its row (with a unique id and, for a reduced
    precision, its label agreement with the fp32 reference) and overlays. An fp32 target joins ``references``."""
    reference, counter = None, None
    if source is not None and target.precision == "fp32":
        reference = ReferenceLabels("")
    elif source is not None and (found := _reference_for(target, references)) is not None:
        counter = AgreementCounter(found)
    hook = reference.record if reference is not None else counter.add if counter is not None else None
    row, kept = bench_target(target, settings, source, keep, bar, on_prediction=hook)
    row["id"] = _row_id(row, taken)
    if reference is not None:
        reference.row_id = row["id"]
        references.append((target, reference))
    row["agreement"] = counter.to_dict() if counter is not None else None
    lat, acc = row["latency_ms"], row["accuracy"]
    end_live_line()
    miou = (f", mIoU {100 * acc['miou']:.2f} on {acc['images']} images of {acc['data']} ({row['backend']}, "
            f"{'x'.join(map(str, row['input_size']))} input)" if acc else "")
    log.info("%s: p50 %.2f ms, %.1f FPS with %d in flight%s", target.label, lat["p50"], row["throughput"]["fps"],
             settings.streams, miou)
    for note in noise_notes(row):
        log.warning("%s: %s; its latency figures are not reliable", target.label, note)
    return row, kept
