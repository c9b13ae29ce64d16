"""``edgeseg export``: checkpoint (or registry model) → verified, linted ONNX bundle, written atomically."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg import __version__
from edgeseg.crf.params import CRFParams
from edgeseg.data.geometry import DEFAULT_RESIZE, MAX_SIDE, RESIZE_MODES, frame_to_input, host_resize, map_to_input
from edgeseg.errors import EdgesegError
from edgeseg.export.lint import simplify_and_lint
from edgeseg.export.onnx_export import check_opset, export_onnx
from edgeseg.export.verify import argmax_agreement, require_agreement, verify_onnx
from edgeseg.fileio import atomic_path, check_replaceable, staged_dir
from edgeseg.meta import ModelMeta
from edgeseg.models import create, load_model, model_info, save_checkpoint
from edgeseg.models.deploy import DeployModel, is_rgbd
from edgeseg.runtime.bundle import (
    ARGMAX_AT,
    BUNDLE_KIND,
    INPUT_NAME,
    LABELS,
    LOGITS,
    PICTURES,
    PROBS,
    Bundle,
    open_bundle,
    sha256_file,
    takes_depth,
    tensor_specs,
)
from edgeseg.runtime.environment import package_versions
from edgeseg.runtime.manifest import DYNAMIC_BATCH, FRAME_FORMATS, InputSpec, Manifest, ModelInfo
from edgeseg.runtime.onnx_metadata import stamp_bundle_file
from edgeseg.runtime.overlay import DEFAULT_ALPHA, write_legend

log = logging.getLogger(__name__)


VERIFICATION_KEYS = ("label_agreement", "max_abs_logit_diff", "relative_logit_diff", "batch_sizes",
                     "picture_agreement", "argmax_at", "argmax_agreement", "argmax_agreement_on")


@dataclass
class ExportOptions:
    input_size: tuple[int, int] | None = None
    batch: int = 1
    dynamic_batch: bool = False
    opset: int = 18
    outputs: tuple[str, ...] = ("labels",)
    exporter: str = "dynamo"
    simplify: str = "onnxsim"
    min_agreement: float = 0.999
    data: str | None = None
    data_images: int = 8
    num_classes: int | None = None
    resize: str = DEFAULT_RESIZE  # how frames of another size are fitted: stretch, letterbox or crop
    crf: CRFParams | None = None  # ConvCRF: crf.onnx and model.crf.onnx; the model also outputs logits
    max_attention_mb: float = 1024.0  # refuse sizes whose (H·W)² attention matrix (DANet) exceeds this
    frame_size: tuple[int, int] | None = None  # the graph takes camera frames of this size and places them itself
    frame_format: str = "rgb"  # the frames' channel order (rgb, or bgr as OpenCV and GStreamer deliver)
    overlay_alpha: float = DEFAULT_ALPHA  # the palette colour's weight in the overlay output
    argmax_at: str = "output"  # or "logits": ArgMax at the logits' resolution, labels upsampled (nearest)
    min_argmax_agreement: float = 0.9  # --argmax-at logits: minimum agreement with the full-resolution ArgMax

    def __post_init__(self) -> None:
        """The same refusals from the CLI and the Python API, before any work."""
        self._check_frame_options()
        if not (isinstance(self.min_agreement, (int, float)) and 0 < self.min_agreement <= 1):
            raise EdgesegError(f"min_agreement must be in (0, 1], got {self.min_agreement}")
        if not (isinstance(self.max_attention_mb, (int, float)) and math.isfinite(self.max_attention_mb)
                and self.max_attention_mb > 0):
            raise EdgesegError(f"max_attention_mb must be a positive number, got {self.max_attention_mb}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise EdgesegError(f"batch must be a positive whole number, got {self.batch!r}")
        if self.resize not in RESIZE_MODES:
            raise EdgesegError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if self.input_size is not None and (len(self.input_size) != 2 or not all(
                isinstance(v, int) and 8 <= v <= MAX_SIDE for v in self.input_size)):
            raise EdgesegError(f"input_size must be (H, W) with sides 8-{MAX_SIDE}, got {self.input_size}")

    def _check_frame_options(self) -> None:
        """The pixel-work options (frame size, pictures, argmax placement) and the combinations they refuse."""
        if self.frame_size is not None and (len(self.frame_size) != 2 or not all(
                isinstance(v, int) and 8 <= v <= MAX_SIDE for v in self.frame_size)):
            raise EdgesegError(f"frame_size must be (H, W) with sides 8-{MAX_SIDE}, got {self.frame_size}")
        if self.frame_format not in FRAME_FORMATS:
            raise EdgesegError(f"frame_format must be one of {', '.join(FRAME_FORMATS)}, got {self.frame_format!r}")
        if self.frame_format != "rgb" and self.frame_size is None:
            raise EdgesegError("--frame-format needs --frame-size (the deploy-size input is always RGB)")
        if not (isinstance(self.overlay_alpha, (int, float)) and 0 <= self.overlay_alpha <= 1):
            raise EdgesegError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")
        if self.argmax_at not in ARGMAX_AT:
            raise EdgesegError(f"argmax_at must be one of {', '.join(ARGMAX_AT)}, got {self.argmax_at!r}")
        if not (isinstance(self.min_argmax_agreement, (int, float)) and 0 < self.min_argmax_agreement <= 1):
            raise EdgesegError(f"min_argmax_agreement must be in (0, 1], got {self.min_argmax_agreement}")
        if self.argmax_at == "logits" and ({LOGITS, PROBS} & set(self.outputs) or self.crf is not None):
            raise EdgesegError("--argmax-at logits returns labels (and overlay, color) only: drop logits and probs "
                               "from --outputs, and --crf")
        if self.frame_size is not None and self.crf is not None:
            raise EdgesegError("--frame-size and --crf do not combine: the CRF reads the image at the deploy size")


def check_input_size(name: str, size: tuple[int, int], *, batch: int = 1,
                     max_attention_mb: float | None = None) -> None:
    """Refuse a deploy size the model cannot take: sides not multiples of its output stride, or (with a
    limit) an attention matrix growing as (H·W)² that exceeds ``max_attention_mb``; both name a size that fits."""
    info = model_info(name)
    divisor = info.size_divisor
    h, w = size
    if h % divisor or w % divisor:
        fit = (max(divisor, round(h / divisor) * divisor), max(divisor, round(w / divisor) * divisor))
        raise EdgesegError(f"input size {h}x{w} does not fit {name}: both sides must be multiples of {divisor} "
                           f"(its output stride); try {fit[0]}x{fit[1]}")
    if info.attention_bytes is None or max_attention_mb is None:
        return
    limit = max_attention_mb * 2**20
    needed = info.attention_bytes(size, batch)
    if needed > limit:
        fit = _largest_fitting_size(info, size, batch, limit)
        hint = f"{fit[0]}x{fit[1]} fits at this aspect ratio" if fit else "no size at this aspect ratio fits"
        raise EdgesegError(f"{name} at {h}x{w} (batch {batch}) needs a {needed / 2**30:.2f} GiB attention matrix, "
                           f"over the {max_attention_mb:g} MiB limit (--max-attention-mb); {hint}")


def _largest_fitting_size(info, size: tuple[int, int], batch: int, limit: float) -> tuple[int, int] | None:
    d = info.size_divisor
    scale = (limit / info.attention_bytes(size, batch)) ** 0.25  # the matrix grows with (H·W)²
    h = max(d, int(size[0] * scale) // d * d)
    while h >= d:
        w = max(d, round(h * size[1] / size[0] / d) * d)
        if info.attention_bytes((h, w), batch) <= limit:
            return h, w
        h -= d
    return None


def _resolve_model(model_name: str | None, checkpoint: str | None, num_classes: int | None):
    if checkpoint:
        model, meta, name = load_model(checkpoint)
        if model_name and model_name != name:
            raise EdgesegError(f"{checkpoint} holds a {name!r} model, not {model_name!r}")
        return model, meta, name, {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint)}
    if not model_name:
        raise EdgesegError("give --model NAME or --checkpoint FILE")
    info = model_info(model_name)
    model = create(model_name, num_classes=num_classes)
    log.warning("exporting %s with random weights (no --checkpoint)", model_name)
    return model, ModelMeta.default(model.num_classes, info.input_size), model_name, {"checkpoint": None}


def _data_images(spec: str, count: int, size: tuple[int, int], depth: bool,
                 mode: str) -> tuple[list, list | None]:
    """Verification images (and depth maps for an RGB-D model) from the val split, fitted to what the graph
    takes (the deploy size, or the frame size) as the runtime will fit them."""
    from edgeseg.data import open_dataset

    source = open_dataset(spec, "val")
    indices = range(min(count, len(source)))
    if not depth:
        return [frame_to_input(source[i][0], size, mode) for i in indices], None
    samples = [source.rgbd(i) for i in indices]
    return [frame_to_input(s[0], size, mode) for s in samples], [map_to_input(s[2], size, mode) for s in samples]


def _stamp_crf(bundle: Bundle, batch, size: tuple[int, int], num_classes: int) -> None:
    """The metadata of the two CRF graphs: the fused one takes the image and returns labels, the standalone one
    takes the model's logits and the image."""
    [image], [logits, labels] = tensor_specs((INPUT_NAME,), (LOGITS, LABELS), batch, size, num_classes)
    stamp_bundle_file(bundle, "model.crf.onnx", graph="model+crf", outputs=[labels])
    stamp_bundle_file(bundle, "crf.onnx", graph="crf", inputs=[logits, image], outputs=[labels])


def export_bundle(out: str | os.PathLike, *, model_name: str | None = None, checkpoint: str | None = None,
                  options: ExportOptions | None = None, then: Callable[[Path], None] | None = None) -> Bundle:
    """Export, simplify, lint and verify; write ``out/`` with ``model.onnx``, ``model.pt``, ``manifest.json``
    and ``verify.json``. Fails (leaving no partial bundle) when label agreement is below the minimum or the
    lint finds errors. ``then(folder)`` runs on the finished bundle before it replaces ``out`` (the CLI adds
    the precision variants there: the bundle appears whole, variants included, or not at all)."""
    opts = options or ExportOptions()
    check_replaceable(out, BUNDLE_KIND)  # before minutes of work, and again when the bundle is swapped in
    check_opset(opts.opset, opts.exporter)
    model, meta, name, source = _resolve_model(model_name, checkpoint, opts.num_classes)
    size = tuple(opts.input_size or meta.input_size or model_info(name).input_size)
    check_input_size(name, size, batch=opts.batch, max_attention_mb=opts.max_attention_mb)
    meta.input_size = size
    outputs = tuple(opts.outputs)
    if opts.crf is not None:
        if is_rgbd(model):
            raise EdgesegError(f"--crf takes RGB models; {name} is RGB-D (its CRF would need the depth too)")
        opts.crf.validate().check_size(size)
        if LOGITS not in outputs:
            outputs += (LOGITS,)  # the chained CRF (crf.onnx) and the dense CRF read the model's logits
    if opts.frame_size is not None and is_rgbd(model):
        raise EdgesegError(f"--frame-size takes RGB models; {name} is RGB-D (its depth comes at the deploy size)")
    frame = tuple(opts.frame_size) if opts.frame_size is not None else None
    feed = frame or size  # what the graph's image input takes
    pictures = bool(set(outputs) & set(PICTURES))
    deploy = DeployModel(model.eval(), meta.mean, meta.std, outputs=outputs, frame=frame, size=size,
                         resize=opts.resize, frame_format=opts.frame_format, alpha=opts.overlay_alpha,
                         palette=[list(c) for c in meta.palette] if pictures else None, argmax_at=opts.argmax_at)
    images, depths = (_data_images(opts.data, opts.data_images, feed, takes_depth(deploy.inputs),
                                   host_resize(opts.resize, frame is not None)) if opts.data else (None, None))
    out = Path(out)
    with staged_dir(out, BUNDLE_KIND) as tmp:
        t0 = time.perf_counter()
        opset = export_onnx(deploy, tmp / "model.onnx", input_size=feed, batch=opts.batch,
                            dynamic_batch=opts.dynamic_batch, opset=opts.opset, exporter=opts.exporter)
        export_s = time.perf_counter() - t0
        simplified, onnx_model, lint = simplify_and_lint(tmp / "model.onnx", opts.simplify)
        verification = verify_onnx(onnx_model, deploy, feed, images, depths=depths)
        require_agreement(verification["label_agreement"], opts.min_agreement)
        if opts.argmax_at == "logits":
            verification.update(argmax_agreement(deploy, feed, images))
            require_agreement(verification["argmax_agreement"], opts.min_argmax_agreement,
                              "the labels of the full-resolution ArgMax (--argmax-at logits)",
                              who="The ArgMax at the logits' resolution", flag="--min-argmax-agreement")
        save_checkpoint(tmp / "model.pt", model, name=name, meta=meta)
        with atomic_path(tmp / "verify.json") as f:
            f.write_text(json.dumps(verification, indent=2) + "\n")
        batch_dim = DYNAMIC_BATCH if opts.dynamic_batch else opts.batch
        inputs, output_specs = tensor_specs(deploy.inputs, outputs, batch_dim, size, meta.num_classes, frame=frame,
                                            frame_format=opts.frame_format,
                                            alpha=float(opts.overlay_alpha) if pictures else None,
                                            argmax_at=opts.argmax_at)
        model_record = ModelInfo(name, list(meta.classes), palette=[[int(v) for v in c] for c in meta.palette],
                                 mean=[float(v) for v in meta.mean], std=[float(v) for v in meta.std],
                                 ignore_index=meta.ignore_index, paper=model_info(name).paper)
        input_spec = InputSpec(size, batch_dim, opts.resize, frame=frame, frame_format=opts.frame_format)
        bundle = Bundle(tmp, Manifest(model=model_record, input=input_spec,
                                      inputs=inputs, outputs=output_specs, reports={
            "source": source,
            "onnx": {"opset": opset, "exporter": opts.exporter, "simplify": simplified,
                     "export_seconds": round(export_s, 2)},
            "verification": {k: verification[k] for k in VERIFICATION_KEYS if k in verification}
            | {"min_agreement": opts.min_agreement},
            "lint": {"errors": len(lint.errors), "warnings": len(lint.warnings), "node_count": lint.node_count},
            "versions": {"edgeseg": __version__, **package_versions(("torch", "onnx", "onnxruntime", "onnxsim",
                                                                      "onnxslim", "numpy"))},
        }))
        stamp_bundle_file(bundle, "model.onnx")  # before it is hashed: the manifest's sha256 is the stamped file's
        bundle.add_file("model.onnx", "onnx", precision="fp32")
        bundle.add_file("model.pt", "checkpoint", precision="fp32")
        bundle.add_file("verify.json", "report")
        if pictures:
            write_legend(tmp / "legend.png", model_record.classes, model_record.palette)
            bundle.add_file("legend.png", "legend")
        if opts.crf is not None:
            from edgeseg.export.crf import export_crf

            bundle.manifest.crf = export_crf(tmp, deploy, meta.num_classes, opts.crf, size, batch=opts.batch,
                                                dynamic_batch=opts.dynamic_batch, opset=opts.opset,
                                                exporter=opts.exporter, simplify=opts.simplify,
                                                min_agreement=opts.min_agreement)
            _stamp_crf(bundle, batch_dim, size, meta.num_classes)
            bundle.add_file("crf.onnx", "crf", precision="fp32")
            bundle.add_file("model.crf.onnx", "onnx-crf", precision="fp32")
        bundle.save()
        if then is not None:
            then(tmp)
            bundle = open_bundle(tmp)
    log.info("bundle written to %s (label agreement %.4f%%)", out, 100 * verification["label_agreement"])
    return Bundle(out, bundle.manifest)


__all__ = ["ExportOptions", "check_input_size", "export_bundle"]
