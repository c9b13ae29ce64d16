"""The contract of every registered model, parametrized over the registry (tiny inputs, plus an odd size)."""

import copy

import numpy as np
import pytest
import torch
from conftest import bundle_group, small_size

from edgeseg.models import SegmentationModel, count_parameters, create, list_models, model_info

NUM_CLASSES = 5
SIZES = [(64, 128), (65, 97)]


_BUILT: dict[str, SegmentationModel] = {}  # the last model built (its tests run one after another), copied per test


def _model(name: str) -> SegmentationModel:
    """A fresh copy of ``name`` as built with seed 0: copying is cheaper than building (~1 s for the VGG-sized
    classic models, whose initialisation draws 100M+ random weights)."""
    if name not in _BUILT:
        _BUILT.clear()
        torch.manual_seed(0)
        _BUILT[name] = create(name, num_classes=NUM_CLASSES)
    torch.manual_seed(0)
    return copy.deepcopy(_BUILT[name])


def _reached_parameters(model: torch.nn.Module, output: torch.Tensor) -> set[str]:
    """The parameters ``output.backward()`` would give a gradient: the leaves its autograd graph reaches (every
    one reached gets one, zeros included). Walking the graph instead of running backward keeps the check exact
    and skips the weight gradients, which for dilated_context's 4096-channel dilated 7×7 convolution alone take
    half a minute on a CPU."""
    names = {id(p): n for n, p in model.named_parameters()}
    reached, seen, stack = set(), set(), [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)  # an AccumulateGrad node: a leaf tensor
        if variable is not None and id(variable) in names:
            reached.add(names[id(variable)])
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return reached


@pytest.fixture(scope="module", params=list_models())
def model_name(request):
    yield request.param
    _BUILT.clear()  # the model's tests are done (a VGG-sized one holds 0.5 GB)


@pytest.mark.parametrize("size", SIZES)
def test_eval_forward_returns_logits_at_input_size(model_name, size):
    model = _model(model_name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, model.in_channels, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, NUM_CLASSES, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", SIZES)
def test_train_forward_returns_main_and_aux_logits(model_name, size):
    model = _model(model_name).train()
    out = model(torch.randn(2, model.in_channels, *size))
    assert isinstance(out, tuple)
    assert len(out) == 1 + len(model.aux_heads)
    for logits in out:
        assert logits.shape == (2, NUM_CLASSES, *size)


def test_deploy_parameters_are_exactly_those_the_eval_graph_uses(model_name):
    """Every non-aux parameter receives a gradient from the eval output, and no aux parameter does."""
    model = _model(model_name).eval()
    reached = _reached_parameters(model, model(torch.randn(1, model.in_channels, 64, 64)).sum())
    for name, _ in model.named_parameters():
        used = name in reached
        assert used != name.startswith("aux_heads."), f"{name}: used={used}"
    assert count_parameters(model) == sum(p.numel() for n, p in model.named_parameters()
                                          if not n.startswith("aux_heads."))


def test_aux_heads_are_trained(model_name):
    model = _model(model_name).train()
    outs = model(torch.randn(2, model.in_channels, 64, 64))
    reached = _reached_parameters(model, sum(o.mean() for o in outs))
    for name, _ in model.aux_heads.named_parameters():
        assert f"aux_heads.{name}" in reached, name


@pytest.mark.parametrize("name", [pytest.param(n, marks=bundle_group(n)) for n in list_models()])
def test_onnx_export_matches_torch(name, registry_bundle):
    """The exported graph against the torch model it came from, whose BatchNorm statistics were moved away from
    their init: the real-time models' shared bundles (tests/conftest.py; the dynamo exporter, simplified), fed
    one random image normalised here, independently of the deploy wrapper. The classic models are covered by
    the registry-wide bundle test's verification instead (the same comparison, made by the exporter)."""
    if not model_info(name).realtime:
        pytest.skip("classic model: exported and verified by tests/test_export.py")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    shared = registry_bundle(name)
    proto = onnx.load(str(shared.bundle.path("model.onnx")))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    h, w = small_size(name)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, h, w, 3], "the export must be static"
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": image})))
    meta = shared.bundle.model
    x = (image / 255.0 - np.asarray(meta.mean)) / np.asarray(meta.std)
    with torch.no_grad():
        ref = shared.model(torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2).contiguous()).numpy()
    assert got["logits"].shape == ref.shape == (1, NUM_CLASSES, h, w)
    np.testing.assert_allclose(got["logits"], ref, atol=1e-4, rtol=0)
    assert np.mean(got["labels"] == ref.argmax(1)) > 0.999
