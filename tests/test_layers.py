import pytest
import torch

from edgeseg.models.layers import ChannelGate, ConvBNAct, SeparableConvBNAct, channel_shuffle, resize_to


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    out = channel_shuffle(x, 2).flatten().tolist()
    assert out == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    with pytest.raises(ValueError):
        channel_shuffle(torch.zeros(1, 5, 2, 2), 2)


def test_channel_shuffle_is_a_permutation_for_any_batch():
    x = torch.randn(3, 8, 4, 5)
    y = channel_shuffle(x, 4)
    assert torch.equal(channel_shuffle(y, 2), x)  # shuffling by g then C/g restores the order


def test_resize_to_is_exact_on_target_size_and_noop_when_equal():
    x = torch.randn(1, 2, 7, 9)
    assert resize_to(x, (7, 9)) is x
    assert resize_to(x, (13, 17)).shape[-2:] == (13, 17)
    assert resize_to(x, torch.empty(1, 1, 3, 4).shape[-2:], mode="nearest").shape[-2:] == (3, 4)


def test_conv_blocks_keep_size_with_same_padding():
    x = torch.randn(2, 4, 9, 11)
    assert ConvBNAct(4, 6, (3, 1), dilation=(2, 1))(x).shape == (2, 6, 9, 11)
    assert SeparableConvBNAct(4, 8, 3, stride=2)(x).shape == (2, 8, 5, 6)


@pytest.mark.parametrize("hidden", [None, 3])
def test_channel_gate_outputs_weights_in_unit_interval(hidden):
    gate = ChannelGate(6, hidden=hidden).eval()
    w = gate(torch.randn(2, 6, 5, 5) * 10)
    assert w.shape == (2, 6, 1, 1)
    assert torch.all((w >= 0) & (w <= 1))
