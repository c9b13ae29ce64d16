"""``edgeseg import`` computes what the reference computes: each format's reference-keyed fixture weights,
imported through the CLI's code path, give the reference's logits (torch), and the exported bundle's labels on
ONNX Runtime agree with the imported model's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity import FIXTURES, MAX_RELATIVE_DIFF, MIN_LABEL_AGREEMENT, compare, load_fixture

from edgeseg.data.depth import DEPTH_MEAN_M, DEPTH_STD_M
from edgeseg.models import load_model, model_info
from edgeseg.models.importers import import_checkpoint
from edgeseg.models.importers.formats import FORMATS

REALTIME = [f for f in FIXTURES if model_info(FORMATS[f].model).realtime]


def reference_file(tmp_path, fmt: str):
    """The fixture's weights saved as the reference's training code would: nested under ``state_dict`` beside an
    epoch counter, every key with DataParallel's ``module.`` prefix."""
    fixture = load_fixture(fmt)
    path = tmp_path / f"{fixture.name}.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in fixture.state_dict().items()}}, path)
    return fixture, path


def model_input(fmt: str, fixture) -> torch.Tensor:
    """The fixture's (reference-normalised) input as the edgeseg model takes it: RGB order, and for ACNet
    edgeseg's depth normalisation (the model maps it back to the weights' own)."""
    x = torch.from_numpy(fixture.inputs[0])
    if FORMATS[fmt].bgr:
        x = x.flip(1)
    if len(fixture.inputs) > 1:
        mean_m, std_m = FORMATS[fmt].kwargs["depth_normalization"]
        metres = torch.from_numpy(fixture.inputs[1]) * std_m + mean_m
        x = torch.cat([x, (metres - DEPTH_MEAN_M) / DEPTH_STD_M], dim=1)
    return x


def imported(tmp_path, fmt: str):
    fixture, path = reference_file(tmp_path, fmt)
    result = import_checkpoint(fmt, path, tmp_path / "imported.pt", num_classes=fixture.spec["num_classes"])
    model, meta, name = load_model(result.path)
    assert name == FORMATS[fmt].model and meta.num_classes == fixture.spec["num_classes"]
    return fixture, model.eval(), meta


@pytest.mark.parametrize("fmt", list(FIXTURES))
def test_imported_weights_reproduce_the_reference_logits(tmp_path, fmt):
    fixture, model, _ = imported(tmp_path, fmt)
    with torch.no_grad():
        logits = model(model_input(fmt, fixture))
    if FORMATS[fmt].reference_output == "log_softmax":  # TorchSeg's eval forward returns log-probabilities
        logits = torch.log_softmax(logits, dim=1)
    relative, agreement = compare(logits.numpy(), fixture.logits)
    assert relative <= MAX_RELATIVE_DIFF and agreement >= MIN_LABEL_AGREEMENT, (relative, agreement)


def _uint8_image(fmt: str, fixture, meta) -> np.ndarray:
    """The fixture input as the uint8 RGB frame the deploy graph takes (rounded, clipped): NHWC."""
    x = model_input(fmt, fixture)[:, :3].numpy()
    mean, std = np.asarray(meta.mean)[None, :, None, None], np.asarray(meta.std)[None, :, None, None]
    pixels = np.clip(np.rint((x * std + mean) * 255), 0, 255).astype(np.uint8)
    return pixels.transpose(0, 2, 3, 1).copy()


# The real-time formats run in the default suite; the big backbones (ResNet-101, VGG-16) take a minute or more each
# to export and run on 2 cores, so they are marked heavy: ``python -m pytest -m heavy tests/test_import_parity.py``.
ONNX_CASES = [f if f in REALTIME else pytest.param(f, marks=pytest.mark.heavy) for f in FIXTURES]


@pytest.mark.parametrize("fmt", ONNX_CASES)
def test_exported_bundle_agrees_on_onnxruntime(tmp_path, fmt):
    from edgeseg.export.pipeline import ExportOptions, export_bundle
    from edgeseg.runtime.load import load_runner

    fixture, model, meta = imported(tmp_path, fmt)
    size = tuple(fixture.spec["input_size"])
    # TorchScript's exporter: the same graph semantics in a fifth of dynamo's time (the registry-wide export tests
    # cover dynamo on every model)
    options = ExportOptions(input_size=size, outputs=("labels", "logits"), exporter="torchscript")
    bundle = export_bundle(tmp_path / "bundle", checkpoint=str(tmp_path / "imported.pt"), options=options)
    image = _uint8_image(fmt, fixture, meta)
    feed = {"image": image}
    x = (torch.from_numpy(image).permute(0, 3, 1, 2).float() / 255 - torch.tensor(meta.mean)[:, None, None]) \
        / torch.tensor(meta.std)[:, None, None]
    if len(fixture.inputs) > 1:  # RGB-D: the graph takes depth in metres and normalises it itself
        normalised_depth = model_input(fmt, fixture)[:, 3:]
        feed["depth"] = (normalised_depth[:, 0] * DEPTH_STD_M + DEPTH_MEAN_M).numpy().astype(np.float32)
        x = torch.cat([x, normalised_depth], dim=1)
    with load_runner(bundle.root, "onnxruntime") as runner:
        out = runner.infer(feed)
    with torch.no_grad():
        expected = model(x).numpy()
    relative, agreement = compare(out["logits"], expected)
    assert (out["labels"] == expected.argmax(1)).mean() >= MIN_LABEL_AGREEMENT
    assert agreement >= MIN_LABEL_AGREEMENT and relative <= 1e-3, (relative, agreement)
