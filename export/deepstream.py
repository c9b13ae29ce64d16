"""``edgeseg deploy deepstream BUNDLE --out DIR``: a folder DeepStream's nvinfer runs as it is.

nvinfer wants an ONNX file it can feed (float planar pixels, see :mod:`edgeseg.export.deepstream_graph`) and a
``[property]`` key file people usually write by hand. This writes both from a bundle, checked: the float-input
graph must give the bundle's labels (ONNX Runtime, seeded frames) or nothing is written. The folder holds:

* ``<model>_nvinfer.onnx``: the variant graph; ``labels.txt``: the class names, one per line;
* ``config_infer_primary_<model>.txt``: nvinfer's config (:mod:`edgeseg.export.deepstream_config`);
* ``int8_calib.cache`` (``--precision int8``): the bundle's scales for the variant
  (:mod:`edgeseg.export.deepstream_int8`);
* ``deepstream_app_config.txt``, ``gst-launch.txt``, ``README.txt``: a CSI camera pipeline and how to run it;
* ``edgeseg-deepstream.json``: what was written and verified; it also lets a later deploy replace the folder
  (with the engine nvinfer writes into it), and nothing else: a folder edgeseg did not write is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.fileio import FolderKind, check_replaceable, refuse_input_overlap, staged_dir, write_text_atomic

log = logging.getLogger(__name__)

MARKER = "edgeseg-deepstream.json"
FORMAT, FORMAT_VERSION = "edgeseg-deepstream", 1
PRECISIONS = ("fp32", "fp16", "int8")
DLA_CORES = (0, 1)  # Jetson AGX Orin and Orin NX have two DLA cores
DEFAULT_TRT = "10.3"  # DeepStream 7.1 on JetPack 6.1 / 6.2
LABELS, CALIB, APP, GST, README = ("labels.txt", "int8_calib.cache", "deepstream_app_config.txt", "gst-launch.txt",
                                   "README.txt")


def _owned(document: dict) -> list[str]:
    """The entries of a DeepStream folder edgeseg may replace: the files it lists, and the engine nvinfer
    builds from them at the name the config gives (stale once the folder is rewritten)."""
    files, engines = document.get("files") or {}, document.get("nvinfer_writes") or []
    if not isinstance(files, dict) or not isinstance(engines, list):
        raise TypeError("malformed marker")
    return [*files, *(e for e in engines if isinstance(e, str))]


DEEPSTREAM_KIND = FolderKind(MARKER, FORMAT, "edgeseg DeepStream folder", _owned)


@dataclass
class DeepStreamOptions:
    """How to deploy: nvinfer's precision, DLA core and batch, the TensorRT the INT8 table is written for, and
    the verification (seeded frames, minimum label agreement)."""

    precision: str = "fp32"
    dla_core: int | None = None
    batch: int | None = None  # None: the bundle's static batch, or 1 for a dynamic-batch bundle
    trt_version: str = DEFAULT_TRT
    min_agreement: float = 0.999
    frames: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgesegError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.dla_core is not None and self.dla_core not in DLA_CORES:
            raise EdgesegError(f"--dla must be a DLA core, 0 or 1 (Jetson Orin has at most two), got {self.dla_core}")
        if self.dla_core is not None and self.precision == "fp32":
            raise EdgesegError("DLA runs fp16 or int8, not fp32: choose --precision fp16 or int8 with --dla")
        if not 0 < self.min_agreement <= 1:
            raise EdgesegError(f"min_agreement must be in (0, 1], got {self.min_agreement}")
        if self.frames < 1 or (self.batch is not None and self.batch < 1):
            raise EdgesegError("frames and batch must be positive whole numbers")
        from edgeseg.runtime.trt_features import onnx_opset_range

        onnx_opset_range(self.trt_version)  # a version, and one edgeseg builds for (10.x, 11.x)
        if self.precision == "int8":
            from edgeseg.export.deepstream_int8 import require_calibrator

            require_calibrator(self.trt_version)


def _model_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "model"


def _batch(bundle, requested: int | None) -> int:
    if bundle.batch == "batch":
        return requested or 1
    if requested is not None and requested != bundle.batch:
        raise EdgesegError(f"the bundle's graph has a static batch of {bundle.batch}: --batch-size {requested} "
                           f"needs a bundle exported with --batch {requested} or --dynamic-batch")
    return int(bundle.batch)


def _check_bundle(bundle) -> None:
    """Refuse bundles nvinfer cannot feed as they are."""
    if bundle.frame_size is not None:
        raise EdgesegError("the bundle takes camera frames at their own size (--frame-size) and places them itself; "
                           "nvinfer scales every frame to the network input: export the bundle without --frame-size")
    if bundle.takes_depth:
        raise EdgesegError("the bundle is an RGB-D model (it also takes depth): nvinfer feeds one image input")


def _load_variant(bundle, options: DeepStreamOptions):
    """The bundle's fp32 graph, its nvinfer variant, and the variant checked against it (or a refusal)."""
    from edgeseg.export.deepstream_graph import (
        batch_sizes,
        build_variant,
        compare_with_bundle,
        require_agreement,
        sample_frames,
    )
    from edgeseg.export.lint import lint_model, load_onnx

    name = bundle.find("onnx", "fp32")
    if name is None:
        raise EdgesegError(f"{bundle.root} has no fp32 ONNX model to build the DeepStream graph from")
    model = load_onnx(bundle.path(name))
    variant = build_variant(model)
    lint = lint_model(variant.model, "DeepStream graph", trt_version=options.trt_version)
    if lint.errors:
        first = lint.errors[0]
        raise EdgesegError(f"TensorRT {options.trt_version} would reject the DeepStream graph: {first.message} "
                           f"({first.node})")
    frames = sample_frames(max(options.frames, *batch_sizes(variant.model)), bundle.input_size, options.seed)
    verification = compare_with_bundle(variant, model, frames)
    require_agreement(verification, options.min_agreement)
    verification["min_agreement"] = options.min_agreement
    return name, variant, verification


def deploy_deepstream(bundle_dir: str | Path, out: str | Path, options: DeepStreamOptions | None = None) -> dict:
    """Write the DeepStream folder ``out`` for the bundle at ``bundle_dir`` (staged, renamed into place);
    returns the marker document (what was written and verified)."""
    import onnx

    from edgeseg import __version__
    from edgeseg.export.deepstream_config import NvinferSettings, app_config_text, gst_launch_text, labels_text
    from edgeseg.export.deepstream_graph import VARIANT_INPUT, VARIANT_OUTPUT, variant_shapes
    from edgeseg.runtime.bundle import open_bundle, sha256_file

    options = options or DeepStreamOptions()
    bundle = open_bundle(bundle_dir)
    refuse_input_overlap(out, [bundle.root])
    check_replaceable(out, DEEPSTREAM_KIND)  # before any work, and again when the folder is swapped in
    _check_bundle(bundle)
    batch = _batch(bundle, options.batch)
    labels = labels_text(bundle.model.classes)
    cache = _bundle_cache(bundle) if options.precision == "int8" else None  # refused before the verification
    source, variant, verification = _load_variant(bundle, options)
    calibration = _calibration(bundle, variant, options, cache) if cache is not None else None
    slug = _model_slug(bundle.model.name)
    onnx_file, infer_config = f"{slug}_nvinfer.onnx", f"config_infer_primary_{slug}.txt"
    settings = NvinferSettings(model=bundle.model.name, onnx_file=onnx_file, labels_file=LABELS,
                               size=tuple(bundle.input_size), num_classes=bundle.model.num_classes, batch=batch,
                               precision=options.precision, resize=bundle.resize_mode, output=VARIANT_OUTPUT,
                               calib_file=CALIB if calibration else None, dla_core=options.dla_core)
    _, note = settings.resize_keys()
    if note:
        log.warning("%s", note)
    written = f"written by edgeseg {__version__} deploy deepstream"
    header = [f"{bundle.model.name} for DeepStream's nvinfer, {written}",
              f"verified: labels agree {100 * verification['label_agreement']:.3f}% with the bundle's graph "
              f"(ONNX Runtime, {verification['frames']} seeded frames)"]
    app_header = [f"deepstream-app pipeline for {bundle.model.name} (CSI camera, nvinfer, nvsegvisual), {written}"]
    texts = {infer_config: settings.text(header), LABELS: labels,
             APP: app_config_text(infer_config, batch, app_header),
             GST: gst_launch_text(infer_config, batch), README: _readme(bundle, settings, infer_config, note)}
    if calibration:
        texts[CALIB] = calibration.pop("text")
    input_shape, output_shape = variant_shapes(variant)
    roles = {onnx_file: "graph", infer_config: "nvinfer config", LABELS: "labels", CALIB: "int8 calibration",
             APP: "deepstream-app config", GST: "gst-launch line", README: "readme"}
    with staged_dir(out, DEEPSTREAM_KIND) as tmp:
        onnx.save(variant.model, str(tmp / onnx_file))
        for name, text in texts.items():
            write_text_atomic(tmp / name, text)
        files = {name: {"role": roles[name], "bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
                 for name in sorted([onnx_file, *texts])}
        document = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "edgeseg": __version__,
            "bundle": {"model": bundle.model.name, "onnx": source, "onnx_sha256": bundle.entry(source).sha256},
            "precision": options.precision, "batch": batch, "dla_core": options.dla_core,
            "input": {"name": VARIANT_INPUT, "shape": input_shape, "dtype": "float32", "color": "RGB",
                      "range": [0, 255]},
            "output": {"name": VARIANT_OUTPUT, "shape": output_shape, "dtype": "float32", "order": "NCHW"},
            "verification": verification, "calibration": calibration,
            "files": files, "nvinfer_writes": [settings.engine_file],
        }
        write_text_atomic(tmp / MARKER, json.dumps(document, indent=2) + "\n")
    log.info("DeepStream folder written to %s", out)
    return document


def _bundle_cache(bundle) -> tuple[str, Path]:
    """The bundle's calibration cache (name, path), or the refusal that says how to make one."""
    from edgeseg.export.deepstream_int8 import bundle_cache

    return bundle_cache(bundle)


def _calibration(bundle, variant, options: DeepStreamOptions, cache: tuple[str, Path]) -> dict:
    """The variant's INT8 table (``text``) and what it was made from."""
    from edgeseg.export.deepstream_int8 import cache_text, variant_scales

    name, path = cache
    scales, dropped = variant_scales(path, variant)
    if dropped:
        log.info("int8 table: %d scales carried over, %d of tensors the DeepStream graph does not have left out "
                 "(%s)", len(scales) - 1, len(dropped), ", ".join(dropped[:3]) + (", ..." if len(dropped) > 3 else ""))
    return {"text": cache_text(scales, options.trt_version), "source": name, "source_sha256": bundle.entry(name).sha256,
            "trt_version": options.trt_version, "scales": len(scales), "dropped": dropped}


def _readme(bundle, settings, infer_config: str, note: str | None) -> str:
    from edgeseg.export.deepstream_config import readme_text

    notes = [f"Note: {note}."] if note else []
    if settings.resize == "letterbox":
        notes.append("The class map covers the letterboxed network input, padding included (as edgeseg's labels "
                     "before they are mapped back to the frame).")
    if settings.precision == "int8":
        notes.append("INT8 uses the bundle's calibration scales with TensorRT's implicit quantization: measure the "
                     "same engine with edgeseg build --precision int8 --legacy-calibrator and edgeseg eval.")
    return readme_text(bundle.model.name, infer_config, settings.engine_file, notes)


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _dla_core(text: str) -> int:
    if text not in {str(c) for c in DLA_CORES}:
        raise argparse.ArgumentTypeError(f"expected a DLA core, 0 or 1 (Jetson Orin has at most two), got {text!r}")
    return int(text)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description and example as written, every option with its default."""


EXAMPLE = """example:
  edgeseg deploy deepstream runs/bisenetv2 --out deepstream/bisenetv2 --precision int8 --dla 0
  cd deepstream/bisenetv2 && deepstream-app -c deepstream_app_config.txt   # on the Jetson
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``edgeseg deploy deepstream``'s options (the dispatcher imports this module to build ``--help``: no heavy
    imports here)."""
    parser.formatter_class = _HelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("bundle", help="a bundle folder from edgeseg export")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the folder to write (replaced only if edgeseg wrote it)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="nvinfer's network-mode (default: fp32, as every command; fp16 is what a Jetson "
                             "usually runs); int8 needs the bundle's calib.cache (edgeseg calibrate --int8)")
    parser.add_argument("--dla", type=_dla_core, metavar="CORE", default=None,
                        help="build for this DLA core (enable-dla, use-dla-core; Jetson Orin: 0 or 1)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help="nvinfer's batch-size (None: the bundle's static batch, 1 for a dynamic-batch bundle)")
    parser.add_argument("--trt-version", default=DEFAULT_TRT, metavar="X.Y",
                        help="the TensorRT nvinfer builds with (DeepStream 7.1: 10.3): the INT8 table's header and "
                             "the ONNX opset check")
    parser.add_argument("--min-agreement", type=_fraction, default=0.999, metavar="FRACTION",
                        help="the least share of labels the DeepStream graph must share with the bundle's graph")
    parser.add_argument("--frames", type=_positive_int, default=4, metavar="N", help="seeded frames to verify on")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


def main(args: argparse.Namespace) -> int:
    from edgeseg.texttable import render_table

    options = DeepStreamOptions(precision=args.precision, dla_core=args.dla, batch=args.batch_size,
                                trt_version=args.trt_version, min_agreement=args.min_agreement, frames=args.frames)
    document = deploy_deepstream(args.bundle, args.out, options)
    if args.json:
        print(json.dumps({"out": str(args.out), **document}, indent=2))
        return 0
    rows = [(name, entry["role"], entry["bytes"]) for name, entry in document["files"].items()]
    print(render_table(("file", "what", "bytes"), rows, right=(2,)))
    check = document["verification"]
    print(f"\n{args.out}: {document['precision']} for nvinfer; labels agree "
          f"{100 * check['label_agreement']:.3f}% with the bundle's graph on {check['frames']} frames; nvinfer writes "
          f"{document['nvinfer_writes'][0]} on its first run")
    return 0
