import logging

import pytest
import torch
from torch import nn

from edgeseg.errors import CheckpointError, EdgesegError, UnknownModelError
from edgeseg.meta import ModelMeta
from edgeseg.models import (
    create,
    list_models,
    load_checkpoint,
    load_model,
    model_info,
    register_model,
    save_checkpoint,
)
from edgeseg.models.backbones import ResNet, load_backbone_weights


def test_unknown_name_lists_valid_models():
    with pytest.raises(UnknownModelError) as err:
        create("bisenet_v9", num_classes=3)
    assert "bisenetv2" in str(err.value) and "lednet" in str(err.value)
    assert isinstance(err.value, EdgesegError)


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="already registered"):
        @register_model(paper="x", input_size=(8, 8), family="x", name="lednet")
        def _dup(*, num_classes):  # pragma: no cover - never built
            return nn.Identity()


def test_list_models_pattern_and_realtime_first():
    assert list_models("dfanet*") == ["dfanet_a", "dfanet_b"]
    names = list_models()
    realtime = [model_info(n).realtime for n in names]
    assert realtime == sorted(realtime, reverse=True)


def test_checkpoint_roundtrip_restores_weights_name_and_meta(tmp_path):
    model = create("lednet", num_classes=4).eval()
    meta = ModelMeta.default(4, (64, 128))
    meta.classes = ["road", "car", "sky", "tree"]
    path = save_checkpoint(tmp_path / "m.pt", model, name="lednet", meta=meta)
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"
    loaded, loaded_meta, name = load_model(path)
    assert name == "lednet" and loaded_meta.classes == meta.classes and loaded_meta.input_size == (64, 128)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))


def test_checkpoint_stores_kwargs(tmp_path):
    model = create("bisenetv1", num_classes=3, backbone="resnet18")
    path = save_checkpoint(tmp_path / "r18.pt", model, name="bisenetv1", kwargs={"backbone": "resnet18"})
    assert create("bisenetv1", weights=path).backbone_name == "resnet18"


def test_different_num_classes_drops_the_head_with_a_warning(tmp_path, caplog):
    src = create("bisenetv2", num_classes=19)
    path = save_checkpoint(tmp_path / "v2.pt", src, name="bisenetv2")
    with caplog.at_level(logging.WARNING):
        model = create("bisenetv2", num_classes=3, weights=path)
    assert "re-initialised 10 head tensors" in caplog.text  # main + 4 boosters, weight + bias
    assert model.head.cls.out_channels == 3
    assert torch.equal(model.detail.s1[0].conv.weight, src.detail.s1[0].conv.weight)


def test_same_num_classes_with_wrong_shapes_is_an_error(tmp_path):
    path = save_checkpoint(tmp_path / "v1.pt", create("bisenetv1", num_classes=3), name="bisenetv1")
    with pytest.raises(CheckpointError, match="shape"):
        create("bisenetv1", num_classes=3, weights=path, backbone="resnet18", context_channels=64)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "l.pt", create("lednet", num_classes=3), name="lednet")
    with pytest.raises(CheckpointError, match="lednet"):
        create("bisenetv2", weights=path)


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        create("lednet", weights=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(bad)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": nn.ReLU()}, path)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)


def test_bare_state_dict_loads_by_name(tmp_path):
    src = create("dfanet_b", num_classes=2)
    torch.save(src.state_dict(), tmp_path / "sd.pt")
    model = create("dfanet_b", num_classes=2, weights=tmp_path / "sd.pt")
    assert torch.equal(model.low_cls.weight, src.low_cls.weight)


def test_imagenet_weights_load_into_backbone_ignoring_fc(tmp_path):
    ref = ResNet(18)
    state = dict(ref.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet18.pth")
    target = ResNet(18)
    load_backbone_weights(target, tmp_path / "resnet18.pth")
    assert torch.equal(target.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="lacks"):
        load_backbone_weights(ResNet(18), tmp_path / "broken.pth")


@pytest.mark.parametrize("output_stride,expected", [(32, 2), (16, 4), (8, 8)])
def test_resnet_output_stride_by_dilation(output_stride, expected):
    feats = ResNet(50, output_stride=output_stride).eval()(torch.randn(1, 3, 64, 64))
    assert feats[-1].shape[-2:] == (expected, expected)
    assert feats[-1].shape[1] == 2048


def test_compact_checkpoint_drops_aux_heads_and_halves(tmp_path):
    model = create("bisenetv2", num_classes=4).eval()
    full = save_checkpoint(tmp_path / "full.pt", model, name="bisenetv2")
    small = save_checkpoint(tmp_path / "small.pt", model, name="bisenetv2", compact=True)
    state = load_checkpoint(small)["state_dict"]
    assert not any(k.startswith("aux_heads.") for k in state)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert small.stat().st_size < 0.5 * full.stat().st_size  # half precision, and no aux heads
    loaded, _, _ = load_model(small)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x), atol=5e-2, rtol=1e-2)
