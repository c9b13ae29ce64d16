"""``README.txt`` of a Triton model written by ``edgeseg deploy triton``: what the model takes and returns, how to
start ``tritonserver`` on the repository, and a request that segments one frame."""

from __future__ import annotations

from edgeseg import __version__
from edgeseg.export.triton_config import PLAN_PLATFORM, TritonModel, TritonTensor
from edgeseg.runtime.bundle import Bundle

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"  # a release with TensorRT 10 and the profile-shape keys


def _shape(tensor: TritonTensor, model: TritonModel) -> str:
    dims = ([-1] if model.max_batch_size else []) + tensor.dims
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _tensor_lines(tensors: list[TritonTensor], model: TritonModel, meaning: dict[str, str]) -> list[str]:
    width = max(len(t.name) for t in [*model.inputs, *model.outputs])
    return [f"  {t.name.ljust(width)}  {t.data_type.removeprefix('TYPE_'):6} {_shape(t, model):24} "
            f"{meaning.get(t.name, '')}".rstrip() for t in tensors]


def _meanings(bundle: Bundle) -> dict[str, str]:
    h, w = bundle.feed_size
    out = {}
    for spec in [*bundle.manifest.inputs, *bundle.manifest.outputs]:
        if spec.name == bundle.manifest.inputs[0].name:
            out[spec.name] = (f"{spec.layout or ''} {spec.color or ''} frames of exactly {h}x{w}, 0-255; "
                              f"normalisation runs in the graph").strip()
        elif spec.unit:
            out[spec.name] = f"{spec.layout or ''} {spec.unit}".strip()
        elif spec.name == "labels":
            out[spec.name] = "class id per pixel (labels.txt names them)"
        elif spec.color:
            out[spec.name] = f"{spec.layout or ''} {spec.color} picture".strip()
        else:
            out[spec.name] = "per-class scores (channel i: line i of labels.txt)"
    return out


def _model_line(bundle: Bundle, model: TritonModel) -> list[str]:
    source = f"1/{model.model_file} (the bundle's {model.source}, sha256 {model.source_entry.sha256[:16]})"
    record = model.engine
    if record is not None:
        lines = [f"Model: {source}, platform {PLAN_PLATFORM}.",
                 f"The plan was built with TensorRT {record.tensorrt} for {record.gpu} (compute "
                 f"{record.compute_capability}). It loads only in a Triton release whose TensorRT is "
                 f"{record.tensorrt} (see Triton's framework support matrix) on a GPU of compute "
                 f"{record.compute_capability}"
                 + (" (or any Ampere or newer GPU: hardware compatible)" if record.hardware_compatibility
                    == "AMPERE_PLUS" else "") + "."]
        if record.version_compatible:
            lines.append("It is version compatible: start tritonserver with "
                         "--backend-config=tensorrt,version-compatible=true (it runs its own lean runtime).")
        lines.append(f"Elsewhere, rebuild it there (edgeseg build BUNDLE --precision {model.precision}) or deploy "
                     f"the ONNX model instead (--engine onnx).")
        return lines
    if model.accelerator:
        lines = [f"Model: {source}, backend onnxruntime with the TensorRT execution accelerator in "
                 f"{model.accelerator['precision_mode']}."]
        cache = model.accelerator.get("trt_engine_cache_path")
        if cache:
            lines.append(f"The first load builds TensorRT engines (minutes) into {cache} inside the container; "
                         f"mount a folder there to keep them across restarts.")
        return lines
    return [f"Model: {source}, backend onnxruntime on {model.kind.upper()} instances."]


def _batch_line(bundle: Bundle, model: TritonModel) -> str:
    if model.dynamic_batching:
        preferred = (f", preferred {', '.join(str(b) for b in model.preferred_batch)}" if model.preferred_batch
                     else "")
        return (f"Batch: dynamic, up to {model.max_batch_size} frames per execution (Triton's dynamic batcher, "
                f"{model.queue_delay_us} us queue delay{preferred}); a request sends 1 or more frames.")
    return (f"Batch: fixed at {bundle.batch} by the bundle (max_batch_size 0): every request sends exactly "
            f"{bundle.batch} frame(s), shape as above.")


def _client_example(bundle: Bundle, model: TritonModel) -> list[str]:
    h, w = bundle.feed_size
    batch = 1 if model.dynamic_batching else int(bundle.batch)
    image = bundle.manifest.inputs[0].name
    flip = "[..., ::-1]" if bundle.frame_bgr else ""
    lines = ["  import numpy as np",
             "  import tritonclient.http as httpclient",
             "  from PIL import Image",
             f"  frame = np.asarray(Image.open('frame.png').convert('RGB').resize(({w}, {h}))){flip}",
             f"  frames = np.ascontiguousarray(np.stack([frame] * {batch}))  # {batch}x{h}x{w}x3 uint8",
             "  client = httpclient.InferenceServerClient('localhost:8000')",
             f"  image = httpclient.InferInput('{image}', list(frames.shape), 'UINT8')",
             "  image.set_data_from_numpy(frames)",
             "  inputs = [image]"]
    for spec, tensor in zip(bundle.manifest.inputs[1:], model.inputs[1:]):
        shape = (batch, *spec.shape[1:])
        lines += [f"  extra = np.zeros({shape}, np.{spec.dtype})  # {spec.name}: {spec.unit or spec.dtype}",
                  f"  inputs.append(httpclient.InferInput('{spec.name}', list(extra.shape), "
                  f"'{tensor.data_type.removeprefix('TYPE_')}'))",
                  "  inputs[-1].set_data_from_numpy(extra)"]
    out = model.outputs[0].name
    lines += [f"  result = client.infer('{model.name}', inputs).as_numpy('{out}')",
              "  print(result.shape, result.dtype)"]
    return lines


def readme_text(bundle: Bundle, model: TritonModel) -> str:
    """The README of ``model`` (written from ``bundle``)."""
    m = bundle.manifest
    lines = [f"{model.name}: a Triton model written by edgeseg {__version__} from the {m.model.name} bundle "
             f"({m.model.num_classes} classes, precision {model.precision}).", ""]
    lines += _model_line(bundle, model) + [""]
    meaning = _meanings(bundle)
    lines += ["Inputs:", *_tensor_lines(model.inputs, model, meaning),
              "Outputs:", *_tensor_lines(model.outputs, model, meaning), ""]
    lines += [_batch_line(bundle, model)]
    if bundle.frame_size is None and bundle.resize_mode != "stretch":
        lines.append(f"Frames of another size: fit them as the bundle was exported ({bundle.resize_mode}), as "
                     f"edgeseg run does; the example below stretches.")
    lines += ["", "Start the server (the folder holding this one is the model repository):", "",
              f"  docker run{' --gpus=all' if model.kind == 'gpu' else ''} --rm -p 8000:8000 -p 8001:8001 "
              "-p 8002:8002 \\",
              f"    -v /path/to/repository:/models {TRITON_IMAGE} \\",
              "    tritonserver --model-repository=/models", "",
              "Check it is ready (200) and read its configuration:", "",
              f"  curl -s -o /dev/null -w '%{{http_code}}\\n' localhost:8000/v2/models/{model.name}/ready",
              f"  curl -s localhost:8000/v2/models/{model.name}/config", "",
              "Segment a frame (pip install 'tritonclient[http]' pillow numpy):", "",
              *_client_example(bundle, model), ""]
    return "\n".join(lines)


__all__ = ["TRITON_IMAGE", "readme_text"]
