"""``edgeseg deploy triton BUNDLE --out REPO``: the bundle as a Triton Inference Server model, ``REPO/NAME/``.

The folder holds ``config.pbtxt`` (see :mod:`edgeseg.export.triton_config`), ``1/model.onnx`` or ``1/model.plan``,
``labels.txt``, ``README.txt`` (see :mod:`edgeseg.export.triton_readme`) and ``edgeseg-triton.json``, the marker
that lets a later run replace it. It is staged beside ``REPO/NAME`` and renamed into place; a ``REPO/NAME``
edgeseg did not write is refused. The copied model is checked against the manifest's sha256, and an ONNX model's
inputs and outputs against the config written for it, so Triton never meets a config its model contradicts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeseg.argtypes import whole_number
from edgeseg.errors import EdgesegError
from edgeseg.export.triton_config import (
    DEFAULT_MAX_BATCH,
    DEFAULT_QUEUE_DELAY_US,
    DEFAULT_TRT_CACHE,
    ENGINE_CHOICES,
    KINDS,
    LABELS_FILE,
    VERSION,
    TritonModel,
    TritonOptions,
)
from edgeseg.fileio import FolderKind

log = logging.getLogger(__name__)

MARKER = "edgeseg-triton.json"
MARKER_FORMAT = "edgeseg-triton-model"
MARKER_VERSION = 1
CONFIG, README = "config.pbtxt", "README.txt"
# What edgeseg may replace as a Triton model: a folder whose marker lists every entry in it.
TRITON_KIND = FolderKind(MARKER, MARKER_FORMAT, "edgeseg Triton model", lambda marker: marker.get("files") or [])

EXAMPLES = """examples:
  edgeseg deploy triton bundle/ --out models/
  edgeseg deploy triton bundle/ --out models/ --precision fp16 --max-batch 16 --instances 2
  edgeseg deploy triton bundle/ --out models/ --precision int8 --engine plan --name road-int8
  edgeseg deploy triton bundle/ --out models/ --kind cpu --json"""


@dataclass
class TritonResult:
    """A written Triton model: its folder, the decisions behind it and the files written (path, bytes, what)."""

    folder: Path
    model: TritonModel
    files: list[tuple[str, int, str]]

    def to_dict(self) -> dict:
        m = self.model
        record = m.engine
        return {"model": m.name, "folder": str(self.folder), "repository": str(self.folder.parent),
                "platform" if m.is_plan else "backend": "tensorrt_plan" if m.is_plan else "onnxruntime",
                "source": m.source, "precision": m.precision, "max_batch_size": m.max_batch_size,
                "dynamic_batching": m.dynamic_batching, "preferred_batch_size": list(m.preferred_batch),
                "instances": m.instances, "kind": KINDS[m.kind], "accelerator": m.accelerator or None,
                "engine": None if record is None else {"tensorrt": record.tensorrt, "gpu": record.gpu,
                                                       "compute_capability": record.compute_capability},
                "files": [{"path": p, "bytes": b} for p, b, _ in self.files]}

    def table(self) -> str:
        from edgeseg.texttable import render_table

        table = render_table(("file", "bytes", "what"), [(p, b, what) for p, b, what in self.files], right=(1,))
        return f"{table}\nTriton model {self.model.name!r} written to {self.folder}; {README} says how to serve it"


def _check_onnx_io(path: Path, model: TritonModel) -> None:
    """The ONNX model at ``path`` (the copy about to be published) takes and returns what ``config.pbtxt``
    declares: names, data types, dims (the batch as -1 when Triton batches), every graph input declared; refused
    otherwise, naming the first difference."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import helper

    from edgeseg.export.triton_config import TRITON_TYPES

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except DecodeError as exc:
        raise EdgesegError(f"{model.source} is not a readable ONNX model ({exc}); re-export the bundle") from None
    initializers = {i.name for i in graph.initializer}
    found = {"input": {v.name: v for v in graph.input if v.name not in initializers},
             "output": {v.name: v for v in graph.output}}
    undeclared = sorted(set(found["input"]) - {t.name for t in model.inputs})
    if undeclared:
        raise EdgesegError(f"{model.source} takes input {undeclared[0]!r}, which the manifest does not list; "
                           f"re-export the bundle")
    for role, tensors in (("input", model.inputs), ("output", model.outputs)):
        for tensor in tensors:
            value = found[role].get(tensor.name)
            if value is None:
                raise EdgesegError(f"{model.source} has no {role} {tensor.name!r}, which the manifest lists; "
                                   f"re-export the bundle")
            kind = value.type.tensor_type
            dtype = TRITON_TYPES.get(helper.tensor_dtype_to_np_dtype(kind.elem_type).name, "?")
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim]
            declared = ([-1] if model.max_batch_size else []) + tensor.dims
            if (dtype, dims) != (tensor.data_type, declared):
                raise EdgesegError(f"{model.source}: {role} {tensor.name!r} is {dtype} {dims}, the manifest says "
                                   f"{tensor.data_type} {declared}; re-export the bundle")


def _copy_verified(src: Path, dest: Path, sha256: str, size: int) -> None:
    from edgeseg.runtime.bundle import sha256_file

    shutil.copyfile(src, dest)
    if dest.stat().st_size != size or sha256_file(dest) != sha256:
        raise EdgesegError(f"{src} does not match its sha256 in the bundle's manifest: the file changed after "
                           f"export; re-export the bundle")


def _what(model: TritonModel, bundle) -> dict[str, str]:
    engine = model.engine
    runs = (f"tensorrt_plan for compute {engine.compute_capability} (TensorRT {engine.tensorrt})" if engine
            else f"onnxruntime, TensorRT {model.accelerator['precision_mode']}" if model.accelerator
            else f"onnxruntime on {model.kind.upper()}")
    batch = f"dynamic batch up to {model.max_batch_size}" if model.dynamic_batching else f"fixed batch {bundle.batch}"
    return {CONFIG: f"{runs}; {batch}; {model.instances} instance(s)",
            f"{VERSION}/{model.model_file}": f"the bundle's {model.source}",
            LABELS_FILE: f"{bundle.model.num_classes} class names",
            README: "how to start tritonserver and send a frame"}


def write_triton_model(bundle_path: str | os.PathLike, repository: str | os.PathLike,
                       options: TritonOptions | None = None) -> TritonResult:
    """Write ``repository/NAME/`` for the bundle at ``bundle_path`` (see the module's docstring)."""
    from edgeseg.export.triton_config import labels_text, plan_triton_model, render_config
    from edgeseg.export.triton_readme import readme_text
    from edgeseg.fileio import refuse_input_overlap
    from edgeseg.runtime.bundle import open_bundle

    bundle = open_bundle(bundle_path)
    model = plan_triton_model(bundle, options)
    repository = Path(repository)
    if repository.exists() and not repository.is_dir():
        raise EdgesegError(f"{repository} is not a folder: --out names the model repository folder")
    folder = repository / model.name
    refuse_input_overlap(folder, [bundle.root])
    source = bundle.path(model.source, verify=False)
    for note in model.notes:
        log.warning("%s", note)
    texts = {CONFIG: render_config(bundle, model), LABELS_FILE: labels_text(bundle),
             README: readme_text(bundle, model)}
    what = _what(model, bundle)
    created = not repository.exists()
    try:
        files = _write(folder, bundle, model, source, texts, what)
    except BaseException:
        if created and repository.is_dir() and not any(repository.iterdir()):
            repository.rmdir()  # the empty repository folder this run made, and nothing else
        raise
    log.info("Triton model %s written to %s (%s, %s)", model.name, folder, model.source, model.precision)
    return TritonResult(folder, model, files)


def _write(folder: Path, bundle, model: TritonModel, source: Path, texts: dict[str, str],
           what: dict[str, str]) -> list[tuple[str, int, str]]:
    from edgeseg.fileio import staged_dir

    with staged_dir(folder, TRITON_KIND) as tmp:
        (tmp / VERSION).mkdir()
        entry = model.source_entry
        _copy_verified(source, tmp / VERSION / model.model_file, entry.sha256, entry.bytes)
        if not model.is_plan:
            _check_onnx_io(tmp / VERSION / model.model_file, model)
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
        marker = {"format": MARKER_FORMAT, "format_version": MARKER_VERSION, "model": model.name,
                  "bundle": str(bundle.root.resolve()), "source": model.source, "source_sha256": entry.sha256,
                  "precision": model.precision, "files": sorted([VERSION, *texts])}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        files = [(str(folder / name), (tmp / name).stat().st_size, what[name])
                 for name in (CONFIG, f"{VERSION}/{model.model_file}", LABELS_FILE, README)]
    return files


positive_int, non_negative_int = whole_number(1, "a positive integer"), whole_number(0, "an integer >= 0")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except where the help states its own (a default that depends on the bundle)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "(default" in text:
            return text
        return super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _HelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("bundle", help="a bundle folder from edgeseg export")
    parser.add_argument("--out", required=True, metavar="REPO",
                        help="the Triton model repository (created when missing); the model goes to REPO/NAME")
    parser.add_argument("--name", help="the model's name in the repository (default: the bundle's model name)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="fp32: model.onnx; fp16: model.fp16.onnx (else model.onnx in TensorRT FP16); int8: "
                             "the Q/DQ model.int8.onnx (default: fp32)")
    parser.add_argument("--engine", choices=ENGINE_CHOICES, default="auto",
                        help="auto: the bundle's TensorRT engine of that precision as a tensorrt_plan when it has "
                             "one, else the ONNX model; onnx; plan (refused without an engine)")
    parser.add_argument("--max-batch", type=positive_int, metavar="N",
                        help=f"dynamic-batch bundles: Triton's max_batch_size (default: {DEFAULT_MAX_BATCH}, or a "
                             f"plan's profile maximum); a fixed-batch bundle gets max_batch_size 0")
    parser.add_argument("--preferred-batch", type=positive_int, nargs="+", metavar="N",
                        help="the dynamic batcher's preferred batch sizes (default: a plan's optimization-profile "
                             "batch, else none)")
    parser.add_argument("--queue-delay-us", type=non_negative_int, default=DEFAULT_QUEUE_DELAY_US, metavar="US",
                        help="how long the dynamic batcher waits to fill a batch, microseconds")
    parser.add_argument("--instances", type=positive_int, default=1, metavar="K",
                        help="model instances (instance_group count)")
    parser.add_argument("--kind", choices=tuple(KINDS), default="gpu", help="instance kind: KIND_GPU or KIND_CPU")
    parser.add_argument("--workspace", type=positive_int, metavar="MB",
                        help="ONNX on a GPU: the TensorRT accelerator's workspace (default: ONNX Runtime's, 1 GiB)")
    parser.add_argument("--trt-cache", default=DEFAULT_TRT_CACHE, metavar="DIR",
                        help="ONNX on a GPU: where the TensorRT accelerator caches its engines, inside the server "
                             "('none': no cache)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (default: a table)")


def main(args: argparse.Namespace) -> int:
    options = TritonOptions(name=args.name, precision=args.precision, engine=args.engine, max_batch=args.max_batch,
                            preferred_batch=None if args.preferred_batch is None else tuple(args.preferred_batch),
                            queue_delay_us=args.queue_delay_us, instances=args.instances, kind=args.kind,
                            workspace_mb=args.workspace,
                            trt_cache=None if args.trt_cache.lower() == "none" else args.trt_cache)
    result = write_triton_model(args.bundle, args.out, options)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


__all__ = ["TRITON_KIND", "TritonResult", "write_triton_model"]
