"""Verify an exported graph against torch: ONNX Runtime vs the torch deploy model on seeded random images
and dataset images, at every batch size the graph declares. Reports label agreement and max |Δlogit|."""

from __future__ import annotations

import logging

import numpy as np
import torch

from edgeseg.errors import EdgesegError
from edgeseg.models.deploy import DeployModel
from edgeseg.onnxgraph import with_outputs
from edgeseg.runtime.bundle import DEPTH_INPUT, INPUT_NAME, LABELS, LOGITS, PICTURES, takes_depth

log = logging.getLogger(__name__)


def _with_logits_output(model):
    """A copy of the graph that also outputs the tensor ArgMax reads (the logits), for comparison."""
    argmax = next((n for n in model.graph.node if n.op_type == "ArgMax"), None)
    if argmax is None:
        return model, None
    return with_outputs(model, [argmax.input[0]]), argmax.input[0]


def batch_sizes(model) -> list[int]:
    """The batch sizes to check: the static one, or 1 and 2 for a dynamic batch."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return [dim.dim_value] if dim.dim_value > 0 else [1, 2]


def require_agreement(agreement: float, minimum: float, what: str = "the labels", *,
                      who: str = "ONNX Runtime", flag: str = "--min-agreement") -> None:
    """Refuse an exported graph whose labels agree with the reference (torch) less than ``minimum``."""
    if agreement < minimum:
        reference = "torch on only" if who == "ONNX Runtime" else "only"
        raise EdgesegError(f"{who} agrees with {reference} {100 * agreement:.3f}% of {what} "
                           f"(minimum {100 * minimum:.1f}%); see {flag}")


def argmax_agreement(deploy: DeployModel, input_size: tuple[int, int], images: list[np.ndarray] | None = None,
                     random_batches: int = 2, seed: int = 0) -> dict:
    """``--argmax-at logits``: the fraction of labels the graph (ArgMax at the logits' resolution, nearest
    upsample of the labels) shares with the full-resolution ArgMax of the same model, in torch, on the
    verification ``images`` (at the graph's input size) or, without any, on seeded random images."""
    exact = deploy.like(outputs=(LABELS,), argmax_at="output")
    cheap = deploy.like(outputs=(LABELS,))
    rng = np.random.default_rng(seed)
    h, w = input_size
    batches = ([np.stack([im]) for im in images] if images else
               [rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) for _ in range(random_batches)])
    equal = total = 0
    with torch.no_grad():
        for batch in batches:
            tensor = torch.from_numpy(np.require(batch, requirements="W"))
            equal += int((exact(tensor) == cheap(tensor)).sum())
            total += int(np.prod(batch.shape[:3]))
    return {"argmax_at": "logits", "argmax_agreement": equal / total,
            "argmax_agreement_on": "data" if images else "random"}


def verify_onnx(model, deploy: DeployModel, input_size: tuple[int, int], images: list[np.ndarray] | None = None,
                random_batches: int = 2, seed: int = 0, depths: list[np.ndarray] | None = None) -> dict:
    """Compare ``model`` (an onnx ModelProto of ``deploy``) with ``deploy`` itself.

    Returns ``{"label_agreement", "max_abs_logit_diff", "relative_logit_diff", "checks": [...]}`` where
    agreement is the worst fraction of equal labels over all checks and the relative difference divides by
    the largest reference logit (at least 1). An RGB-D graph gets random depth (0-10 m) with the random
    images and ``depths`` with ``images``.
    """
    import onnxruntime as ort

    probe, logit_name = _with_logits_output(model)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    pictures = tuple(o for o in deploy.outputs if o in PICTURES)
    reference = deploy.like(outputs=(LABELS, LOGITS, *pictures))
    rng = np.random.default_rng(seed)
    h, w = input_size
    checks = []
    rgbd = takes_depth(deploy.inputs)
    if rgbd and images and (depths is None or len(depths) != len(images)):
        raise ValueError("an RGB-D model needs one depth map per verification image")
    for b in batch_sizes(model):
        batches = []
        for _ in range(random_batches):
            feed = {INPUT_NAME: rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)}
            if rgbd:
                feed[DEPTH_INPUT] = rng.uniform(0.0, 10.0, (b, h, w)).astype(np.float32)
            batches.append(("random", feed))
        if images:
            for start in range(0, len(images) - b + 1, b):
                feed = {INPUT_NAME: np.stack(images[start:start + b])}
                if rgbd:
                    feed[DEPTH_INPUT] = np.stack(depths[start:start + b]).astype(np.float32)
                batches.append(("data", feed))
        for source, feed in batches:
            got = dict(zip(out_names, session.run(out_names, feed)))
            with torch.no_grad():
                tensors = (torch.from_numpy(np.require(feed[n], requirements="W")) for n in deploy.inputs)
                ref_labels, ref_logits, *ref_pictures = reference(*tensors)
            predicted = got["labels"] if "labels" in got else _argmax_of_scores(got)  # --outputs logits alone
            agreement = float(np.mean(predicted == ref_labels.numpy()))
            check = {"batch": b, "source": source, "label_agreement": agreement}
            for name, ref_picture in zip(pictures, ref_pictures):  # within ±1 (float rounding before the floor)
                close = np.abs(got[name].astype(np.int16) - ref_picture.numpy().astype(np.int16)) <= 1
                check["picture_agreement"] = min(check.get("picture_agreement", 1.0), float(np.mean(close)))
            if logit_name:
                ref = ref_logits.numpy()
                check["max_abs_logit_diff"] = float(np.abs(got[logit_name] - ref).max())
                check["max_abs_logit"] = float(np.abs(ref).max())
            checks.append(check)
    result = {"label_agreement": min(c["label_agreement"] for c in checks), "checks": checks,
              **({"picture_agreement": min(c["picture_agreement"] for c in checks)} if pictures else {}),
              "batch_sizes": batch_sizes(model), "images": {"random": random_batches, "data": len(images or [])}}
    if logit_name:
        result["max_abs_logit_diff"] = max(c["max_abs_logit_diff"] for c in checks)
        # float32 rounding grows with the logits' magnitude (a randomly initialised ResNet-101 gives ~1e4)
        result["relative_logit_diff"] = max(c["max_abs_logit_diff"] / max(1.0, c["max_abs_logit"]) for c in checks)
    return result


def _argmax_of_scores(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The labels a graph exported without a ``labels`` output implies: the ArgMax of its logits or probs."""
    for name in ("logits", "probs"):
        if name in outputs:
            return outputs[name].argmax(axis=1)
    raise ValueError(f"a deploy graph with neither labels nor class scores: {sorted(outputs)}")
