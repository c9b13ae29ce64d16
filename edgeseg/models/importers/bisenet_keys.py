"""Key maps of the BiSeNet releases: CoinCheung/BiSeNet (V1 with ResNet-18, V2) and the authors' TorchSeg
(V1 with ResNet-18 or Xception39)."""

from __future__ import annotations

from edgeseg.models.importers.keymap import KeyMap

# CoinCheung/BiSeNet lib/models/bisenetv2.py. Booster heads aux2 / aux3 / aux4 / aux5_4 only train.
COINCHEUNG_V2 = KeyMap(
    rules=[
        (r"^detail\.S(\d)\.", r"detail.s\1."),
        (r"^segment\.S1S2\.", "semantic.stem."),
        (r"^segment\.S5_4\.", "semantic.s5."),
        (r"^segment\.S5_5\.", "semantic.ce."),
        (r"^segment\.S(\d)\.", r"semantic.s\1."),
        # gather-and-expand layers
        (r"\.conv1\.(conv|bn)\.", r".conv.\1."),
        (r"\.dwconv\.0\.", ".dwconv.conv."),
        (r"\.dwconv\.1\.", ".dwconv.bn."),
        (r"\.dwconv1\.0\.", ".dwconv.0.conv."),
        (r"\.dwconv1\.1\.", ".dwconv.0.bn."),
        (r"\.dwconv2\.0\.", ".dwconv.1.conv."),
        (r"\.dwconv2\.1\.", ".dwconv.1.bn."),
        (r"\.conv2\.0\.", ".project.conv."),
        (r"\.conv2\.1\.", ".project.bn."),
        (r"\.shortcut\.0\.", ".shortcut.0.conv."),
        (r"\.shortcut\.1\.", ".shortcut.0.bn."),
        (r"\.shortcut\.2\.", ".shortcut.1.conv."),
        (r"\.shortcut\.3\.", ".shortcut.1.bn."),
        # context embedding
        (r"^semantic\.ce\.conv_gap\.", "semantic.ce.gap_conv."),
        (r"^semantic\.ce\.conv_last\.", "semantic.ce.last."),
        # bilateral guided aggregation
        (r"^bga\.left1\.0\.", "aggregation.detail_keep.0.conv."),
        (r"^bga\.left1\.1\.", "aggregation.detail_keep.0.bn."),
        (r"^bga\.left1\.2\.", "aggregation.detail_keep.1."),
        (r"^bga\.left2\.0\.", "aggregation.detail_down.0.conv."),
        (r"^bga\.left2\.1\.", "aggregation.detail_down.0.bn."),
        (r"^bga\.right1\.0\.", "aggregation.semantic_up.conv."),
        (r"^bga\.right1\.1\.", "aggregation.semantic_up.bn."),
        (r"^bga\.right2\.0\.", "aggregation.semantic_keep.0.conv."),
        (r"^bga\.right2\.1\.", "aggregation.semantic_keep.0.bn."),
        (r"^bga\.right2\.2\.", "aggregation.semantic_keep.1."),
        (r"^bga\.conv\.0\.", "aggregation.fuse.conv."),
        (r"^bga\.conv\.1\.", "aggregation.fuse.bn."),
        # segmentation head
        (r"^head\.conv_out\.1\.", "head.cls."),
    ],
    unused=[r"aux(2|3|4|5_4)\."],
)

# CoinCheung/BiSeNet lib/models/bisenetv1.py (ResNet-18). Aux heads conv_out16 / conv_out32 only train.
COINCHEUNG_V1 = KeyMap(
    rules=[
        (r"^cp\.resnet\.", "backbone."),
        (r"^cp\.arm(16|32)\.conv_atten\.", r"arm\1.gate.fc.0."),
        (r"^cp\.arm(16|32)\.bn_atten\.", r"arm\1.gate.fc.1."),
        (r"^cp\.arm(16|32)\.", r"arm\1."),
        (r"^cp\.conv_head(16|32)\.", r"refine\1."),
        (r"^cp\.conv_avg\.", "global_context."),
        (r"^sp\.conv1\.", "spatial_path.layers.0."),
        (r"^sp\.conv2\.", "spatial_path.layers.1."),
        (r"^sp\.conv3\.", "spatial_path.layers.2."),
        (r"^sp\.conv_out\.", "spatial_path.layers.3."),
        (r"^ffm\.convblk\.", "ffm.conv."),
        (r"^ffm\.conv\.weight$", "ffm.gate.fc.0.weight"),
        (r"^ffm\.bn\.", "ffm.gate.fc.1."),
        (r"^conv_out\.conv_out\.", "head.cls."),
        (r"^conv_out\.conv\.", "head.conv."),
    ],
    unused=[r"conv_out(16|32)\."],
)

# The authors' TorchSeg: model/bisenet/cityscapes.bisenet.{R18,X39}/network.py. heads.0 / heads.1 only train.
_TORCHSEG_COMMON = [
    (r"^spatial_path\.conv_7x7\.", "spatial_path.layers.0."),
    (r"^spatial_path\.conv_3x3_1\.", "spatial_path.layers.1."),
    (r"^spatial_path\.conv_3x3_2\.", "spatial_path.layers.2."),
    (r"^spatial_path\.conv_1x1\.", "spatial_path.layers.3."),
    (r"^global_context\.1\.", "global_context."),
    (r"^ffm\.conv_1x1\.", "ffm.conv."),
    (r"^ffm\.channel_attention\.1\.conv\.", "ffm.gate.fc.0."),
    (r"^ffm\.channel_attention\.2\.conv\.", "ffm.gate.fc.2."),
    (r"^arms\.0\.", "arm32."),
    (r"^arms\.1\.", "arm16."),
    (r"^(arm\d\d)\.conv_3x3\.", r"\1.conv."),
    (r"^(arm\d\d)\.channel_attention\.1\.conv\.", r"\1.gate.fc.0."),
    (r"^(arm\d\d)\.channel_attention\.1\.bn\.", r"\1.gate.fc.1."),
    (r"^refines\.0\.", "refine32."),
    (r"^refines\.1\.", "refine16."),
    (r"^heads\.2\.conv_3x3\.", "head.conv."),
    (r"^heads\.2\.conv_1x1\.", "head.cls."),
]
TORCHSEG_R18 = KeyMap(rules=[(r"^context_path\.", "backbone."), *_TORCHSEG_COMMON], unused=[r"heads\.[01]\."])
TORCHSEG_X39 = KeyMap(
    rules=[
        (r"^context_path\.conv1\.", "backbone.stem."),
        (r"^context_path\.layer(\d)\.", lambda m: f"backbone.stages.{int(m.group(1)) - 1}."),
        (r"\.residual_branch\.", ".residual."),
        (r"\.conv1\.weight$", ".depthwise.weight"),
        (r"\.point_wise_cbr\.", ".pointwise."),
        *_TORCHSEG_COMMON,
    ],
    unused=[r"heads\.[01]\."],
)
