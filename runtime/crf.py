"""CRF post-processing in the runtime: ``load_crf_runner`` gives a runner whose labels went through a CRF.

``conv`` (ConvCRF) takes whichever form the bundle has: the fused ``model.crf.onnx`` at fp32 on ONNX Runtime;
otherwise the model variant of the asked precision chained with ``crf.onnx`` (the model's logits and the frame
go in, labels come out); on the torch backends ConvCRF is fused into the torch graph. ``dense`` chains the
model with Krähenbühl's dense CRF on the CPU (pydensecrf2), the quality reference. Chained runners time the CRF
separately (``last_stages_ms["crf"]``), so the pipeline shows what it costs per frame.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from edgeseg.crf.params import CRFParams
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import LOGITS, Bundle, open_bundle
from edgeseg.runtime.runner import Runner, TensorSpec

log = logging.getLogger(__name__)
CRF_MODES = ("conv", "dense")


class DenseCRFRunner(Runner):
    """The dense CRF behind the runner contract: ``logits`` (N, C, H, W) and ``image`` (N, H, W, 3) → labels."""

    backend = "densecrf"

    def __init__(self, num_classes: int, size: tuple[int, int], params: CRFParams | None = None) -> None:
        super().__init__("densecrf")
        self.num_classes, self.size, self.params = num_classes, tuple(size), params or CRFParams()

    def activate(self) -> None:
        from edgeseg.runtime.dense_crf import load_densecrf

        load_densecrf()

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(LOGITS, "float32", ("batch", self.num_classes, *self.size)),
                TensorSpec("image", "uint8", ("batch", *self.size, 3))]

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("labels", "uint8", ("batch", *self.size))]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgeseg.runtime.dense_crf import dense_crf

        labels = [dense_crf(logits, image, self.params) for logits, image in zip(feed[LOGITS], feed["image"])]
        return {"labels": np.stack(labels)}


class ChainedRunner(Runner):
    """A model runner with a ``logits`` output followed by a CRF runner that takes those logits and the frame.
    ``last_stages_ms`` has the model's stages plus ``crf``; the latency covers both."""

    def __init__(self, model: Runner, crf: Runner) -> None:
        super().__init__(f"{model.name} + {crf.name}")
        self.model, self.crf = model, crf
        self.backend = f"{model.backend}+{crf.backend}"

    def activate(self) -> None:
        self.model.__enter__()
        try:
            self.crf.__enter__()
        except BaseException:
            self.model.__exit__(None, None, None)
            raise
        if LOGITS not in {s.name for s in self.model.outputs()}:
            self.deactivate()
            raise EdgesegError(f"{self.model.name} has no logits output for the CRF: re-export the bundle with "
                               f"--crf (or --outputs labels,logits)")

    def deactivate(self) -> None:
        self.crf.__exit__(None, None, None)
        self.model.__exit__(None, None, None)

    def inputs(self) -> list[TensorSpec]:
        return self.model.inputs()

    def outputs(self) -> list[TensorSpec]:
        return self.crf.outputs()

    def device_memory_mib(self) -> float | None:
        parts = [m for m in (self.model.device_memory_mib(), self.crf.device_memory_mib()) if m is not None]
        return sum(parts) if parts else None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.infer(feed, check=False)
        model_ms = self.model.last_latency_ms
        t0 = time.perf_counter()
        refined = self.crf.infer({LOGITS: np.ascontiguousarray(out[LOGITS], np.float32), "image": feed["image"]},
                                 check=False)
        crf_ms = self.crf.last_latency_ms or (time.perf_counter() - t0) * 1e3
        stages = dict(self.model.last_stages_ms)
        stages.setdefault("compute", model_ms or 0.0)
        stages["crf"] = crf_ms
        self.last_stages_ms = stages
        return refined


def bundle_crf_params(bundle: Bundle) -> CRFParams:
    """The CRF parameters the bundle was exported with (the defaults for a bundle without a CRF)."""
    section = bundle.manifest.crf
    return CRFParams.from_dict(section.params) if section else CRFParams()


def load_crf_runner(path: str | os.PathLike, mode: str = "conv", backend: str = "auto", *, precision: str = "fp32",
                    **options) -> Runner:
    """A runner for ``path`` (a bundle) with CRF post-processing; ``options`` go to :func:`load_runner`."""
    from edgeseg.runtime.backends import auto_onnx_backend, backend_missing
    from edgeseg.runtime.load import engine_runner, load_runner, pick_engine

    if mode not in CRF_MODES:
        raise EdgesegError(f"unknown CRF {mode!r}; choose {', '.join(CRF_MODES)}")
    bundle = open_bundle(path)
    params = bundle_crf_params(bundle)
    num_classes = bundle.model.num_classes
    if mode == "dense":
        model = load_runner(path, backend, precision=precision, **options)
        return ChainedRunner(model, DenseCRFRunner(num_classes, bundle.input_size, params))
    if backend == "torch":
        return load_runner(path, "torch", precision=precision, crf=params, **options)
    if bundle.manifest.crf is None:
        raise EdgesegError(f"{bundle.root} has no ConvCRF: re-export it with edgeseg export --crf "
                           f"(or use --crf dense with pydensecrf2)")
    use_tensorrt = backend == "tensorrt" or (backend == "auto" and pick_engine(bundle.files, precision)
                                             and bundle.find("crf-engine", "fp32")
                                             and backend_missing("tensorrt") is None)
    if use_tensorrt:
        engine, crf_engine = pick_engine(bundle.files, precision), bundle.find("crf-engine", "fp32")
        if engine is None or crf_engine is None:
            missing = [f"edgeseg build {bundle.root} --precision {precision}"] if engine is None else []
            missing += [f"edgeseg build {bundle.root} --crf"] if crf_engine is None else []
            raise EdgesegError(f"--crf with TensorRT needs the model's and the CRF's engines: {'; '.join(missing)}")
        return engine_runner(bundle, engine, options.get("streams", 1), options.get("cuda_graph", False),
                             then=crf_engine)
    onnx = auto_onnx_backend(options.get("providers", "cpu")) if backend == "auto" else backend
    fused = bundle.find("onnx-crf", precision)
    if fused is not None:
        log.info("ConvCRF fused in %s", fused)
        return load_runner(Path(bundle.root) / fused, onnx, precision=precision,
                           **_only(options, "providers", "threads"))
    model = load_runner(path, onnx, precision=precision, **_only(options, "providers", "threads"))
    crf = load_runner(bundle.path(bundle.manifest.crf.standalone), onnx,
                      **_only(options, "providers", "threads"))
    return ChainedRunner(model, crf)


def _only(options: dict, *names: str) -> dict:
    return {k: v for k, v in options.items() if k in names}
