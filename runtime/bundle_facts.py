"""What a bundle's manifest says about one of its files that a bench report shows beside the measurements:
where the model came from (to tell unlike runs apart), and for a reduced-precision variant the calibration's
own story (its label agreement with fp32, the accuracy gate's verdict against its budget, and the layers
left in float). ``edgeseg calibrate`` writes these into the manifest's ``variants`` and ``gate`` reports and,
when the gate searched, ``sensitivity.json``; everything here is read as untrusted JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.runtime.bundle import Bundle

log = logging.getLogger(__name__)


def _strings(value) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def source_identity(bundle: Bundle) -> dict | None:
    """``{"checkpoint": file name, "sha256": ...}`` of the weights the bundle was exported from, if recorded."""
    source = bundle.manifest.report("source")
    checkpoint, sha = source.get("checkpoint"), source.get("sha256")
    if not isinstance(sha, str) and not isinstance(checkpoint, str):
        return None
    return {"checkpoint": Path(checkpoint).name if isinstance(checkpoint, str) else None,
            "sha256": sha if isinstance(sha, str) else None}


def _searched_layers(bundle: Bundle) -> set[str]:
    """Every layer some step of the gate's sensitivity search tried in float (``sensitivity.json``)."""
    if "sensitivity.json" not in bundle.files:
        return set()
    try:
        data = json.loads(bundle.path("sensitivity.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, EdgesegError) as exc:
        log.warning("%s: sensitivity.json unreadable (%s); the report cannot tell searched layers apart",
                    bundle.root, exc)
        return set()
    steps = data.get("steps") if isinstance(data, dict) else None
    return {name for step in (steps if isinstance(steps, list) else []) if isinstance(step, dict)
            for name in _strings(step.get("excluded"))}


def quantization_facts(bundle: Bundle, file_name: str, precision: str) -> dict | None:
    """The calibration's record of the variant in ``file_name`` (None when the bundle was never calibrated):

    ``budget_points`` (the gate's mIoU budget), ``gate_passed`` (the whole gate), ``verdict`` (``pass`` or
    ``fail`` for this variant, None when the gate scored nothing), ``eval_data`` / ``eval_images``, the
    calibration's ``label_agreement`` and ``miou_drop`` on that data, and for a reduced-precision variant the
    layers in float: ``float_layers`` (all), ``searched_float_layers`` (those the sensitivity search put
    there; the rest are the logits head and what follows it) or ``kept_fp32_ops`` (fp16)."""
    gate, variants = bundle.manifest.report("gate"), bundle.manifest.report("variants")
    if not gate and not variants:
        return None
    name, variant = next(((k, v) for k, v in variants.items() if isinstance(v, dict) and v.get("file") == file_name),
                         (precision, variants.get(precision)))
    variant = variant if isinstance(variant, dict) else {}
    passed = gate.get("passed") if isinstance(gate.get("passed"), bool) else None
    over = gate.get("over_budget") if isinstance(gate.get("over_budget"), dict) else {}
    facts = {"budget_points": _number(gate.get("max_miou_drop")), "gate_passed": passed,
             "verdict": None if passed is None else ("fail" if name in over else "pass"),
             "eval_data": gate.get("eval_data") if isinstance(gate.get("eval_data"), str) else None,
             "eval_images": gate.get("eval_images") if isinstance(gate.get("eval_images"), int) else None,
             "label_agreement": _number(variant.get("label_agreement")),
             "miou_drop": _number(variant.get("miou_drop"))}
    if precision != "fp32":
        layers = _strings(variant.get("excluded"))
        searched = _searched_layers(bundle) if layers else set()
        facts.update(float_layers=layers, searched_float_layers=[n for n in layers if n in searched],
                     kept_fp32_ops=_strings(variant.get("kept_fp32_ops")))
        calibration = bundle.manifest.calibration
        if precision == "int8" and calibration is not None:
            facts.update(calibration_method=calibration.method, calibration_images=calibration.images)
    return facts
