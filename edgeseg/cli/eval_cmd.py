"""``edgeseg eval CHECKPOINT --data SPEC``: mIoU, pixel accuracy and per-class IoU on a dataset split.

A bundle is scored as its manifest says; an ONNX file copied out of its bundle as its own metadata says (class
names, how images are fitted, the frame's channel order, its precision); a file without either as before: the
dataset's class names and the default fit."""

from __future__ import annotations

import argparse
import json
import sys

from edgeseg.cli.args import input_size, positive_int, torch_device_or_auto
from edgeseg.cli.common import DEVICE_HELP, PRECISION_DEFAULT, add_canonical, add_json, examples
from edgeseg.data.geometry import DEFAULT_RESIZE, RESIZE_MODES
from edgeseg.data.synthetic_source import VAL_SIZE
from edgeseg.runtime.backends import PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an edgeseg checkpoint (.pt), a bundle folder, or an .onnx file")
    parser.add_argument("--data", default="synthetic", help="labelled data spec (default synthetic)")
    parser.add_argument("--split", default="val", help="dataset split (default val)")
    add_canonical(parser, "--val-images", "--max-images", type=positive_int, metavar="N",
                  help="score only the first N images of the split (default: all of it; synthetic/val has "
                       f"{VAL_SIZE})")
    parser.add_argument("--boundary", action="store_true", help="also report the boundary F-score")
    parser.add_argument("--backend", choices=("auto", "onnxruntime", "openvino", "torch"), default="auto",
                        help="for a bundle: which backend runs it (default auto: OpenVINO on an x86 CPU when "
                             "installed, else ONNX Runtime)")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISION_DEFAULT,
                        help=f"which variant of a bundle to run (default {PRECISION_DEFAULT})")
    parser.add_argument("--device", type=torch_device_or_auto, default="auto",
                        help=f"where checkpoints and --backend torch run: {DEVICE_HELP} (default auto)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for the backend (default: all cores)")
    parser.add_argument("--input-size", type=input_size, metavar="HxW",
                        help="checkpoints: score at this deploy size, as its bundle would be (default: each image "
                             "at its own size)")
    parser.add_argument("--resize", choices=RESIZE_MODES,
                        help=f"checkpoints with --input-size: how images are fitted (default {DEFAULT_RESIZE})")
    add_json(parser, "the scores")
    examples(parser,
             "edgeseg eval runs/demo/best.pt --val-images 20                 # a checkpoint, torch",
             "edgeseg eval demo/bundle-bisenetv2 --precision int8 --json     # a bundle's INT8 variant",
             "edgeseg eval model.onnx --data cityscapes:/data/cityscapes --boundary")


def format_table(scores: dict, classes: list[str]) -> str:
    """Per-class IoU, then the summary scores, in percent."""
    from edgeseg.texttable import render_table

    rows = [(name, "n/a" if iou is None else f"{100 * iou:.2f}") for name, iou in zip(classes, scores["per_class_iou"])]
    rows += [(label, f"{100 * scores[key]:.2f}") for key, label in (
        ("miou", "mIoU"), ("pixel_acc", "pixel acc"), ("mean_acc", "mean acc"), ("fw_iou", "FW IoU"),
        ("boundary_f", "boundary F")) if scores.get(key) is not None]
    return render_table(("class", "IoU"), rows, right=(1,))


def _evaluate_checkpoint(args, source):
    import torch

    from edgeseg.errors import EdgesegError
    from edgeseg.evaluate import evaluate_model, select_device
    from edgeseg.models import load_model

    if args.resize is not None and args.input_size is None:
        raise EdgesegError("--resize says how images fit --input-size: give --input-size HxW too")
    mode = args.resize or DEFAULT_RESIZE
    model, meta, name = load_model(args.model)
    if source.num_classes != meta.num_classes:
        raise EdgesegError(f"{args.model} predicts {meta.num_classes} classes, {args.data} has {source.num_classes}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    cm = evaluate_model(model.to(device), source, num_classes=meta.num_classes, mean=meta.mean, std=meta.std,
                        device=device, max_images=args.val_images, boundary=args.boundary, progress=True,
                        size=args.input_size, mode=mode)
    if args.input_size is None:
        return cm, meta.classes, name, "torch", "each image at its own size", {"precision": args.precision}
    h, w = args.input_size
    return cm, meta.classes, name, "torch", f"{h}x{w} deploy size ({mode}), labels mapped back to each image", {
        "precision": args.precision}


def _evaluated_onnx(path, bundle, precision: str, backend: str):
    """The ONNX file the runner runs (whose metadata eval shows), or None (a TensorRT engine, the torch backend)."""
    from edgeseg.runtime.backends import BACKENDS

    entry = BACKENDS.get(backend)  # torch-cuda is no entry of its own
    if entry is None or entry.kind != "onnx":
        return None
    if path.is_file():
        return path
    name = bundle.find("onnx", precision)
    return bundle.root / name if name else None


def _check_classes(path, classes: list[str], source, data: str) -> None:
    from edgeseg.errors import EdgesegError

    if len(classes) != source.num_classes:
        raise EdgesegError(f"{path} predicts {len(classes)} classes, {data} has {source.num_classes}")


def _evaluate_runner(args, source):
    """Score a bundle or an ONNX file. What the graph is (class names, how images are fitted, the frame's channel
    order) comes from the bundle's manifest, else from the ONNX file's own metadata, else the dataset's classes
    and the default fit."""
    from pathlib import Path

    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.bundle import is_bundle, open_bundle
    from edgeseg.runtime.evaluate import evaluate_runner
    from edgeseg.runtime.feeds import image_geometry
    from edgeseg.runtime.load import load_runner
    from edgeseg.runtime.onnx_metadata import read_metadata

    path = Path(args.model)
    if args.input_size is not None or args.resize is not None:
        raise EdgesegError("--input-size and --resize are for checkpoints: a bundle is scored at its deploy size, "
                           "fitted as its manifest says")
    bundle = open_bundle(path) if is_bundle(path) else None
    if bundle is not None:
        _check_classes(path, bundle.model.classes, source, args.data)
    with load_runner(path, args.backend, precision=args.precision, threads=args.threads,
                     device=args.device) as runner:
        onnx_file = _evaluated_onnx(path, bundle, args.precision, runner.backend)
        metadata = read_metadata(onnx_file) if onnx_file is not None else None
        facts = bundle or metadata  # a file copied out of its bundle: what its own metadata says
        if bundle is None and metadata is not None:
            _check_classes(path, metadata.model.classes, source, args.data)
        classes, name, mode, bgr = source.classes, path.stem, DEFAULT_RESIZE, False
        where = "deploy size"
        if facts is not None:
            classes, name, mode, bgr = facts.model.classes, facts.model.name, facts.host_resize, facts.frame_bgr
            if facts.frame_size is not None:
                where = f"frame size, placed in the graph by {facts.resize_mode};"
        precision = args.precision
        if path.is_file():  # a file runs as what it is, whatever --precision names
            listed = bundle.files.get(path.name) if bundle is not None else None
            precision = (metadata.precision if metadata is not None
                         else listed.model_precision if listed is not None else precision)
        cm = evaluate_runner(runner, source, num_classes=len(classes), max_images=args.val_images,
                             boundary=args.boundary, progress=True, mode=mode, bgr=bgr)
        h, w = image_geometry(runner.name, runner.inputs())[1]
    return cm, classes, name, runner.backend, f"{h}x{w} {where} ({mode}), labels mapped back to each image", {
        "precision": precision, "metadata": metadata, "onnx": onnx_file is not None}


def main(args: argparse.Namespace) -> int:
    from edgeseg.data import open_dataset
    from edgeseg.metrics import scores_from_confusion
    from edgeseg.runtime.onnx_metadata import NO_METADATA

    source = open_dataset(args.data, args.split)
    is_checkpoint = args.model.endswith((".pt", ".pth"))
    if is_checkpoint and args.backend in ("onnxruntime", "openvino"):
        from edgeseg.errors import EdgesegError

        raise EdgesegError(f"{args.model} is a checkpoint; export it to evaluate with {args.backend}")
    cm, classes, name, backend, resolution, facts = (_evaluate_checkpoint if is_checkpoint else _evaluate_runner)(
        args, source)
    metadata = facts.get("metadata")
    scores = scores_from_confusion(cm.matrix)
    if cm.boundary:
        scores.update(cm.boundary)
    images = min(len(source), args.val_images or len(source))
    result = {"model": name, "path": str(args.model), "backend": backend, "precision": facts["precision"],
              "data": args.data, "split": args.split, "images": images, "resolution": resolution,
              "classes": list(classes), **scores}
    if not is_checkpoint:
        result["metadata"] = metadata.to_dict() if metadata is not None else None
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{name} ({backend}, {facts['precision']}) on {source.name} ({images} images, scored at {resolution})")
        if facts.get("onnx"):
            print(f"metadata: {metadata.summary() if metadata is not None else NO_METADATA}")
        print(format_table(scores, list(classes)))
    return 0
