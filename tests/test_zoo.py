"""The classic zoo: backbones with torchvision's names and sizes, the shared context modules, DUpsampling,
the DANet memory refusal, and the published figures of the classic models."""

import pytest
import torch
import torch.nn.functional as F

from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import check_input_size
from edgeseg.models import build, count_parameters, list_models
from edgeseg.models.backbones.mobilenetv2 import MobileNetV2
from edgeseg.models.backbones.resnet import ResNet
from edgeseg.models.backbones.vgg import VGG16, fully_convolutional_state
from edgeseg.models.backbones.xception import AlignedXception
from edgeseg.models.dilated_context import ContextModule
from edgeseg.models.dunet import DUpsampling
from edgeseg.models.layers.context import bin_pool, bin_pooling_kernel

CLASSIC = {"fcn32s", "fcn16s", "fcn8s", "deeplabv1", "dilated_context", "deeplabv2", "refinenet", "pspnet",
           "deeplabv3", "deeplabv3plus", "fastfcn", "dunet", "danet", "acnet"}


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_all_nineteen_models_are_registered():
    names = set(list_models())
    assert len(names) == 19 and CLASSIC <= names


def test_backbones_have_torchvision_sizes_and_key_names():
    with torch.device("meta"):
        vgg, r101, r50, mnv2 = VGG16(), ResNet(101), ResNet(50), MobileNetV2()
    # torchvision: vgg16 features 14,714,688; resnet101 / resnet50 without fc; mobilenet_v2 features[:18]
    assert _params(vgg) == 14_714_688
    assert _params(r101) == 44_549_160 - 2_049_000
    assert _params(r50) == 25_557_032 - 2_049_000
    assert _params(mnv2) == 3_504_872 - 1_281_000 - 412_160
    keys = set(vgg.state_dict())
    assert {"features.0.weight", "features.28.bias"} <= keys and "features.4.weight" not in keys
    keys = set(mnv2.state_dict())
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
            "features.2.conv.1.0.weight", "features.17.conv.3.running_var"} <= keys


@pytest.mark.parametrize("variant,stride", [("plain", 32), ("deeplab", 8), ("dilated", 8)])
def test_vgg_variants_keep_indices_and_set_the_output_stride(variant, stride):
    vgg = VGG16(variant)
    assert set(vgg.state_dict()) == set(VGG16("plain").state_dict())
    with torch.no_grad():
        out = vgg(torch.zeros(1, 3, 64, 64))
    assert out[-1].shape[-1] == 64 // stride


def test_fully_convolutional_state_reshapes_the_classifier():
    state = {"classifier.0.weight": torch.randn(8, 512 * 49), "classifier.0.bias": torch.randn(8),
             "classifier.3.weight": torch.randn(8, 8), "classifier.3.bias": torch.randn(8)}
    out = fully_convolutional_state(state)
    assert out["fc6.weight"].shape == (8, 512, 7, 7) and out["fc7.weight"].shape == (8, 8, 1, 1)
    assert torch.equal(out["fc6.weight"].reshape(8, -1), state["classifier.0.weight"])


@pytest.mark.parametrize("stride", [8, 16])
def test_dilated_backbones_reach_their_output_stride(stride):
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        for net in (AlignedXception(stride, middle_units=1), MobileNetV2(stride)):
            low, high = net.eval()(x)
            assert low.shape[-1] == 16 and high.shape[-1] == 64 // stride
        assert ResNet(18, stride).eval()(x)[-1].shape[-1] == 64 // stride


def test_resnet_multi_grid_sets_layer4_dilations():
    net = ResNet(50, 16, multi_grid=(1, 2, 4))
    assert [b.conv2.dilation[0] for b in net.layer4] == [2, 4, 8]
    with pytest.raises(ValueError, match="one rate per layer4 block"):
        ResNet(50, 16, multi_grid=(1, 2))


def test_bin_pool_equals_adaptive_pooling_when_bins_divide_and_covers_every_position_otherwise():
    x = torch.randn(2, 3, 12, 18)
    for bins in (1, 2, 3, 6):
        torch.testing.assert_close(bin_pool(x, bins), F.adaptive_avg_pool2d(x, bins))
    for size in range(6, 40):
        kernel, stride = bin_pooling_kernel(size, 6)
        assert (6 - 1) * stride + kernel == size and kernel >= stride
    with pytest.raises(ValueError):
        bin_pooling_kernel(5, 6)


@pytest.mark.parametrize("layers", [8, 10])
def test_context_module_starts_as_the_identity(layers):
    """Yu & Koltun's identity initialisation: the untrained basic module passes score maps through."""
    module = ContextModule(5, layers=layers)
    x = torch.rand(1, 5, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(module(x), x)


def test_dupsampling_rearranges_in_the_authors_order_and_inverts_its_patches():
    up = DUpsampling(2 * 2 * 3, num_classes=3, scale=2)
    up.reconstruction.copy_(torch.eye(12))
    labels = torch.randint(0, 3, (2, 4, 6))
    # patches → a (N, C·r², h, w) map → DUpsampling with W = I gives the one-hot labels back
    z = up.patches(labels).reshape(2, 2 * 3, 12).permute(0, 2, 1).reshape(2, 12, 2, 3)
    onehot = F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(up(z), onehot)
    # the authors' order: channel a·(C·r) + b·C + k lands at (k, h·r + b, w·r + a)
    probe = torch.zeros(1, 12, 1, 1)
    probe[0, 1 * 6 + 0 * 3 + 2] = 1.0  # a=1, b=0, k=2
    assert up(probe)[0, 2, 0, 1] == 1.0 and up(probe).sum() == 1.0


def test_dupsampling_fit_learns_the_label_subspace():
    torch.manual_seed(0)
    up = DUpsampling(8, num_classes=4, scale=4)
    labels = torch.zeros(4, 32, 32, dtype=torch.long)
    labels[:, 16:] = 1
    labels[:, :, 20:] = 2  # piecewise constant: few distinct patches
    before = float(up.reconstruction_loss(labels))
    after = up.fit(labels)
    assert after < 1e-4 < before


def test_danet_refuses_sizes_whose_attention_does_not_fit_and_names_one_that_does():
    with pytest.raises(EdgesegError, match=r"4\.00 GiB attention matrix.*720x1440 fits"):
        check_input_size("danet", (1024, 2048), max_attention_mb=1024)
    check_input_size("danet", (720, 1440), max_attention_mb=1024)
    check_input_size("danet", (1024, 2048), max_attention_mb=8192)
    check_input_size("bisenetv2", (1024, 2048), max_attention_mb=1)


def test_danet_refusal_is_one_line_through_the_cli(cli_here, tmp_path):
    r = cli_here("export", "--model", "danet", "--input-size", "512x1024", "--max-attention-mb", "64",
            "--out", str(tmp_path / "d"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "attention matrix" in r.stderr.strip().splitlines()[-1] and not (tmp_path / "d").exists()


def _meta(name, **kwargs):
    with torch.device("meta"):
        return build(name, num_classes=19, **kwargs)


def test_jpu_module_matches_its_published_size():
    jpu = _meta("fastfcn").jpu
    assert abs(_params(jpu) - 19.7e6) / 19.7e6 < 0.01


@pytest.mark.parametrize("backbone", ["xception", "resnet101", "mobilenetv2"])
def test_deeplabv3plus_backbones_build(backbone):
    model = _meta("deeplabv3plus", backbone=backbone)
    assert count_parameters(model) > 2e6


def test_pspnet_and_danet_have_their_papers_aux_heads():
    assert list(_meta("pspnet").aux_heads) == ["layer3"] and _meta("pspnet").aux_weight == 0.4
    assert set(_meta("danet").aux_heads) == {"pam", "cam"}
    assert list(_meta("acnet").aux_heads) == ["out5", "out4", "out3", "out2"]


def test_refinenet_has_the_authors_released_pooling_chain_and_classifier():
    """RefineNet as released (authors' MatConvNet configuration and the port of their weights): 4 pool-conv
    blocks in every chained residual pooling, a 3×3 classifier; Fig. 2's 2 blocks and 1×1 are 8.3M fewer."""
    model = _meta("refinenet")
    assert [len(b.crp.convs) for b in (model.refine4, model.refine3, model.refine2, model.refine1)] == [4] * 4
    assert model.head[-1].kernel_size == (3, 3) and model.head[-1].padding == (1, 1)
    drawn = _meta("refinenet", crp_blocks=2, classifier_kernel=1)
    assert count_parameters(model) - count_parameters(drawn) == 8_296_448


def test_dilated_context_defaults_to_the_released_cityscapes_model():
    """Dilation10 (the model behind the paper's Cityscapes 67.1): basic module, C channels, dilations to 64."""
    convs = [m for m in _meta("dilated_context").context.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1, 1, 2, 4, 8, 16, 32, 64, 1, 1]
    assert {c.out_channels for c in convs} == {19} and convs[-1].kernel_size == (1, 1)
    assert count_parameters(_meta("dilated_context")) == 134_368_179  # the released prototxt's convolutions
    large = [m for m in _meta("dilated_context", context="large").context.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in large] == [38, 38, 76, 152, 304, 608, 608, 19]
    assert [c.dilation[0] for c in large] == [1, 1, 2, 4, 8, 16, 1, 1]
    with pytest.raises(ValueError, match="8 layers"):
        ContextModule(5, large=True, layers=10)


@pytest.mark.parametrize("name", ["pspnet", "deeplabv2"])
def test_pspnet_and_deeplabv2_dilate_every_block_of_their_dilated_stages(name):
    """The authors' code (PSPNet's, DeepLab v2's Caffe models): layer3.0 at 2 and layer4.0 at 4, as the rest."""
    net = _meta(name).backbone
    assert {b.conv2.dilation for b in net.layer3} == {(2, 2)} and {b.conv2.dilation for b in net.layer4} == {(4, 4)}
    assert net.layer3[0].conv2.padding == (2, 2) and net.layer4[0].conv2.stride == (1, 1)
    tv = _meta(name, dilate_first_block=False).backbone
    assert (tv.layer3[0].conv2.dilation, tv.layer4[0].conv2.dilation) == ((1, 1), (2, 2))


def test_deeplabv3_and_danet_keep_torchvisions_first_block_dilation():
    """torchvision's replace_stride_with_dilation (their parity references): layer3.0 at the previous dilation."""
    for name in ("deeplabv3", "danet"):
        net = _meta(name, output_stride=8).backbone if name == "deeplabv3" else _meta(name).backbone
        assert net.layer3[0].conv2.dilation == (1, 1) and net.layer3[1].conv2.dilation == (2, 2), name


@pytest.mark.parametrize("name", ["pspnet", "deeplabv2"])
def test_a_format_1_checkpoint_is_rebuilt_with_the_defaults_it_was_saved_under(tmp_path, name):
    """Defaults that changed after checkpoint format 1 (first-block dilation) do not change what an old
    checkpoint computes."""
    import torch

    from edgeseg.models import create, load_model
    from edgeseg.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    old = create(name, num_classes=3, depth=18, dilate_first_block=False).eval()
    path = save_checkpoint(tmp_path / "old.pt", old, name=name, kwargs={"depth": 18})
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1  # written before the default changed, without the option
    torch.save(payload, path)
    model, _, _ = load_model(path)
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), old(x))
    assert model.build_kwargs["dilate_first_block"] is False
    payload["format_version"] = 2  # a format-2 checkpoint without the option takes today's default
    torch.save(payload, path)
    assert load_model(path)[0].build_kwargs.get("dilate_first_block", True) is True
