"""The contract of every registered model, parametrized over the registry (tiny inputs, plus an odd size)."""

import numpy as np
import pytest
import torch

from edgeseg.models import SegmentationModel, count_parameters, create, list_models, model_info

NUM_CLASSES = 5
SIZES = [(64, 128), (65, 97)]


def _model(name: str) -> SegmentationModel:
    torch.manual_seed(0)
    return create(name, num_classes=NUM_CLASSES)


@pytest.fixture(scope="module", params=list_models())
def model_name(request):
    return request.param


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
    model(torch.randn(1, model.in_channels, 64, 64)).sum().backward()
    for name, p in model.named_parameters():
        used = p.grad is not None
        assert used != name.startswith("aux_heads."), f"{name}: used={used}"
    assert count_parameters(model) == sum(p.numel() for n, p in model.named_parameters()
                                          if not n.startswith("aux_heads."))


def test_aux_heads_are_trained(model_name):
    model = _model(model_name).train()
    outs = model(torch.randn(2, model.in_channels, 64, 64))
    sum(o.mean() for o in outs).backward()
    for name, p in model.aux_heads.named_parameters():
        assert p.grad is not None, name


def test_onnx_export_matches_torch(model_name):
    """The bare model (no deploy wrapper) through the dynamo exporter. The classic models are covered by
    the registry-wide bundle test instead (same check on the deploy graph; their exports take ~10 s each)."""
    if not model_info(model_name).realtime:
        pytest.skip("classic model: exported and verified by tests/test_export.py")
    ort = pytest.importorskip("onnxruntime")
    model = _model(model_name)
    model.train()
    with torch.no_grad():  # set BN running statistics away from their init
        for _ in range(3):
            model(torch.randn(2, model.in_channels, 64, 96) * 2 + 0.5)
    model.eval()
    x = torch.randn(1, model.in_channels, 64, 96, generator=torch.Generator().manual_seed(1))
    program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, verbose=False)
    proto = program.model_proto
    assert proto.opset_import[0].version >= 18
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, model.in_channels, 64, 96], "the export must be static"
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
