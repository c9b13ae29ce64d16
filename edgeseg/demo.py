"""``edgeseg demo``: the whole job on one machine with no data and no GPU, in a few minutes.

train on synthetic scenes (time-boxed) → export a verified bundle with fp16 and int8 variants behind the
accuracy gate → bench every variant on every backend installed → report.{json,md,html}.

Each stage's output is kept under ``out/``: a later run reuses the trained checkpoint (unless ``retrain``) and
the bundle when it was exported from that checkpoint, so rerunning the demo only re-measures.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import CheckpointError, EdgesegError
from edgeseg.runtime.bundle import MANIFEST, open_bundle, sha256_file

log = logging.getLogger(__name__)

DATA = "synthetic"


@dataclass
class DemoOptions:
    out: Path = Path("demo")
    model: str = "bisenetv2"
    minutes: float = 5.0
    retrain: bool = False
    calib_images: int = 64
    gate_images: int = 50
    bench_iters: int = 50
    bench_warmup: int = 5
    bench_images: int | None = 50  # of the 100 synthetic val scenes, each scored once per engine; None: all
    threads: int | None = None


# ``edgeseg demo --quick``: about 3 minutes in all on 2 cores (2 of training, a smaller calibration, gate and
# bench); its own default folder, so a full demo never reuses the quick run's shorter training.
QUICK = dict(out=Path("demo-quick"), minutes=2.0, calib_images=16, gate_images=20, bench_iters=20, bench_warmup=2,
             bench_images=20)


@dataclass
class DemoResult:
    checkpoint: Path
    bundle: Path
    report_dir: Path
    report: dict
    gate_passed: bool | None
    seconds: dict


def _reusable_checkpoint(path: Path, model: str) -> bool:
    from edgeseg.models import load_checkpoint

    if not path.is_file():
        return False
    try:
        name = load_checkpoint(path).get("model")
    except CheckpointError as exc:
        log.warning("not reusing %s: %s", path, exc)
        return False
    return name == model


def train_stage(options: DemoOptions) -> Path:
    """Train ``options.model`` for ``options.minutes`` (schedule sized to fit), or reuse an earlier run's."""
    from edgeseg.train.budget import iterations_for_minutes
    from edgeseg.train.config import SYNTHETIC_CPU_RECIPE, TrainConfig
    from edgeseg.train.trainer import BEST, Trainer

    run_dir = options.out / f"train-{options.model}"
    best = run_dir / BEST
    if not options.retrain and _reusable_checkpoint(best, options.model):
        log.info("reusing the checkpoint of an earlier demo run: %s (--retrain to train again)", best)
        return best
    base = TrainConfig(model=options.model, out=str(run_dir), **SYNTHETIC_CPU_RECIPE)
    probe_minutes = 0.5  # what timing the steps costs, taken from the budget
    iters = iterations_for_minutes(base, max(options.minutes - probe_minutes, 0.5))
    config = dataclasses.replace(base, iters=iters, max_minutes=max(options.minutes - probe_minutes, 0.5))
    log.info("training %s on synthetic scenes: %d steps, at most %.1f min", options.model, iters, config.max_minutes)
    trainer = Trainer(config, overwrite=True)  # the demo's own stage folder: an earlier demo run's is replaced
    trainer.run()
    return best


def _reusable_bundle(bundle_dir: Path, checkpoint: Path) -> bool:
    if not (bundle_dir / MANIFEST).is_file():
        return False
    try:
        bundle = open_bundle(bundle_dir)
    except EdgesegError:
        return False
    same_source = bundle.manifest.report("source").get("sha256") == sha256_file(checkpoint)
    return same_source and all(bundle.find("onnx", p) for p in ("fp32", "fp16", "int8"))


def export_stage(options: DemoOptions, checkpoint: Path) -> tuple[Path, bool | None]:
    """Export with fp16 and int8 variants behind the accuracy gate; returns the bundle and the gate verdict."""
    bundle_dir = options.out / f"bundle-{options.model}"
    if _reusable_bundle(bundle_dir, checkpoint):
        log.info("reusing the bundle exported from this checkpoint: %s", bundle_dir)
    else:
        from edgeseg.calibration.pipeline import CalibrationOptions
        from edgeseg.export.pipeline import ExportOptions
        from edgeseg.workflow import export_with_variants

        calibration = CalibrationOptions(calib_data=DATA, calib_size=options.calib_images, eval_data=DATA,
                                         eval_images=options.gate_images, threads=options.threads)
        export_with_variants(bundle_dir, checkpoint=str(checkpoint), options=ExportOptions(data=DATA),
                             calibration=calibration)
    gate = open_bundle(bundle_dir).manifest.report("gate")
    return bundle_dir, gate.get("passed")


def engine_stage(bundle: Path) -> list[str]:
    """Where TensorRT is usable: build the fp16 and int8 engines (kept in the bundle) so the bench covers them.
    A failed build is logged and the demo goes on without that engine."""
    from edgeseg.runtime.backends import backend_missing
    from edgeseg.runtime.build import build_engine
    from edgeseg.runtime.engine_plan import BuildOptions

    if (reason := backend_missing("tensorrt")) is not None:
        log.info("no TensorRT engines: %s", reason)
        return []
    built = []
    for precision in ("fp16", "int8"):
        if open_bundle(bundle).find("engine", precision):
            log.info("reusing the %s engine in %s", precision, bundle)
            continue
        try:
            built.append(build_engine(bundle, BuildOptions(precision=precision))["engine"])
        except EdgesegError as exc:
            log.warning("TensorRT %s engine not built: %s", precision, exc)
    return built


def check_out(out: Path) -> None:
    """Refuse, before any work, an ``out`` that is not a folder."""
    if out.exists() and not out.is_dir():
        raise EdgesegError(f"--out {out} exists and is not a folder; give a folder for the demo's stages")


def run_demo(options: DemoOptions) -> DemoResult:
    """Train (or reuse), export, bench and report under ``options.out``; see the module's docstring."""
    from edgeseg.fileio import os_error
    from edgeseg.runtime.bench import BenchSettings, run_bench
    from edgeseg.runtime.report import write_bench_report

    check_out(options.out)
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, options.out) from exc
    seconds = {}
    t0 = time.monotonic()
    checkpoint = train_stage(options)
    seconds["train"] = time.monotonic() - t0
    t1 = time.monotonic()
    bundle, passed = export_stage(options, checkpoint)
    seconds["export"] = time.monotonic() - t1
    t2 = time.monotonic()
    engine_stage(bundle)
    seconds["engines"] = time.monotonic() - t2
    t2 = time.monotonic()
    settings = BenchSettings(data=DATA, warmup=options.bench_warmup, iters=options.bench_iters,
                             max_images=options.bench_images, threads=options.threads)
    report_dir = options.out / "report"
    report = write_bench_report(run_bench([str(bundle)], settings), report_dir)
    seconds["bench"] = time.monotonic() - t2
    seconds["total"] = time.monotonic() - t0
    return DemoResult(checkpoint, bundle, report_dir, report, passed, {k: round(v, 1) for k, v in seconds.items()})
