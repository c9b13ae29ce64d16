"""Shared building blocks; every model composes these instead of writing its own."""

from edgeseg.models.layers.attention import ChannelGate
from edgeseg.models.layers.context import ASPP, PyramidPooling, bin_pool, broadcast_to
from edgeseg.models.layers.conv import ConvBNAct, SeparableConvBNAct
from edgeseg.models.layers.heads import SegHead
from edgeseg.models.layers.ops import channel_shuffle, global_avg_pool, resize_to

__all__ = ["ASPP", "ChannelGate", "ConvBNAct", "PyramidPooling", "SegHead", "SeparableConvBNAct", "bin_pool",
           "broadcast_to", "channel_shuffle", "global_avg_pool", "resize_to"]
