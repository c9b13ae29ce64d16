"""Each model with a published figure against it (deploy graph, 19 classes); every real-time model has one.

Parameter counts within 5% where the reference is a parameter count; FLOPs (multiply-adds) within 6% at the
paper's input size where the paper's FLOPs are the consistent figure (see the model docstrings for why the
BiSeNet and DFANet papers' parameter columns cannot be matched by a network with their FLOPs).
"""

import pytest
import torch

from edgeseg.models import build, count_flops, count_parameters, list_models, model_info

REALTIME = [n for n in list_models() if model_info(n).realtime]


def _meta_model(name):
    with torch.device("meta"):
        return build(name, num_classes=19)


def test_the_five_realtime_models_are_registered():
    assert set(REALTIME) >= {"bisenetv1", "bisenetv2", "dfanet_a", "dfanet_b", "lednet"}


@pytest.mark.parametrize("name", REALTIME)
def test_every_realtime_model_has_a_reference_figure(name):
    info = model_info(name)
    assert info.reference_params or info.reference_flops
    assert info.reference_source


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).reference_params])
def test_parameters_within_5_percent(name):
    ref = model_info(name).reference_params
    params = count_parameters(_meta_model(name))
    assert abs(params - ref) / ref <= 0.05, f"{name}: {params / 1e6:.3f}M vs {ref / 1e6:.3f}M"


@pytest.mark.parametrize("name", [n for n in REALTIME if model_info(n).reference_flops])
def test_flops_within_6_percent(name):
    ref, size = model_info(name).reference_flops
    macs = count_flops(_meta_model(name), size) / 2
    assert abs(macs - ref) / ref <= 0.06, f"{name}: {macs / 1e9:.2f} vs {ref / 1e9:.2f} GMACs at {size}"


def test_bisenetv1_resnet18_variant_builds_with_torchvision_names():
    model = build("bisenetv1", num_classes=19, backbone="resnet18")
    keys = model.backbone.state_dict().keys()
    assert "layer4.1.bn2.running_var" in keys and "conv1.weight" in keys
