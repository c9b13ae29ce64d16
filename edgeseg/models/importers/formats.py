"""The published-checkpoint formats ``edgeseg import`` reads: for each, the edgeseg model and options that
compute what the reference computes, its key map, how its file is recognised, and its training setup
(normalisation, dataset, deploy size), which becomes the checkpoint's :class:`~edgeseg.meta.ModelMeta`."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeseg.errors import EdgesegError
from edgeseg.meta import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.models.importers.bisenet_keys import COINCHEUNG_V1, COINCHEUNG_V2, TORCHSEG_R18, TORCHSEG_X39
from edgeseg.models.importers.keymap import KeyMap
from edgeseg.models.importers.lednet_keys import XIAOYUFENFEI_LEDNET
from edgeseg.models.importers.resnet_keys import ACNET, JUNFU_DANET, TORCHVISION_DEEPLABV3
from edgeseg.models.importers.vgg_keys import DEEPLAB_LARGEFOV

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class Format:
    """One published checkpoint format.

    ``signature``: reference keys every file of this format has (``absent``: keys it never has), so a file
    of another format is named as such. ``classifier``: the reference key whose first dimension is the class
    count. ``stats``: the (mean, std) the reference normalises its input with, per dataset where they differ
    (``"*"``: every other dataset). ``input_sizes``: the deploy size per dataset where the reference's
    evaluation differs from the dataset's usual one. ``reference_output``: what the reference's eval forward
    returns (``"logits"``, or ``"log_softmax"``: the same labels); ``bgr``: the reference takes BGR input, and
    the import reverses the first conv's input channels so that the model takes RGB like every edgeseg model.
    """

    name: str
    model: str
    kwargs: dict
    keymap: KeyMap
    source: str
    signature: tuple[str, ...]
    classifier: str
    dataset: str
    datasets: tuple[str, ...]
    stats: dict[str, Stats]
    absent: tuple[str, ...] = ()
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    reference_output: str = "logits"
    bgr: bool = False

    def stats_for(self, dataset: str) -> Stats:
        return self.stats.get(dataset, self.stats["*"])


IMAGENET: Stats = (IMAGENET_MEAN, IMAGENET_STD)
_COINCHEUNG_STATS = {
    "*": ((0.3257, 0.3690, 0.3223), (0.2112, 0.2148, 0.2115)),  # Cityscapes, RGB
    "ade20k": ((0.49343230, 0.46819794, 0.43106043), (0.25680755, 0.25506608, 0.27422913)),
    "coco-stuff": ((0.46962251, 0.4464104, 0.40718787), (0.27469736, 0.27012361, 0.28515933)),
}
_COINCHEUNG_SIZES = {"ade20k": (640, 640), "coco-stuff": (640, 640)}
_TORCHVISION_R101 = "backbone.layer3.22.conv1.weight"  # ResNet-101's layer3 has 23 blocks, ResNet-50's 6

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("coincheung-bisenetv2", "bisenetv2", {"aggregation_upsampling": "nearest"}, COINCHEUNG_V2,
           "CoinCheung/BiSeNet lib/models/bisenetv2.py", ("bga.left1.0.weight", "segment.S1S2.conv.conv.weight"),
           "head.conv_out.1.weight", "cityscapes", ("cityscapes", "ade20k", "coco-stuff"), _COINCHEUNG_STATS,
           input_sizes=_COINCHEUNG_SIZES),
    Format("coincheung-bisenetv1", "bisenetv1",
           {"backbone": "resnet18", "variant": "coincheung", "head_channels": 256, "aux_channels": 64},
           COINCHEUNG_V1, "CoinCheung/BiSeNet lib/models/bisenetv1.py (ResNet-18)",
           ("cp.resnet.conv1.weight", "ffm.convblk.conv.weight"), "conv_out.conv_out.weight", "cityscapes",
           ("cityscapes", "ade20k", "coco-stuff"), _COINCHEUNG_STATS, input_sizes=_COINCHEUNG_SIZES),
    Format("torchseg-bisenet-r18", "bisenetv1", {"backbone": "resnet18"}, TORCHSEG_R18,
           "yu-changqian/TorchSeg model/bisenet/cityscapes.bisenet.R18 (the authors')",
           ("spatial_path.conv_7x7.conv.weight", "context_path.layer1.0.conv1.weight"), "heads.2.conv_1x1.weight",
           "cityscapes", ("cityscapes",), {"*": IMAGENET}, reference_output="log_softmax"),
    Format("torchseg-bisenet-x39", "bisenetv1", {"backbone": "xception39", "xception_depthwise_bn": False},
           TORCHSEG_X39, "yu-changqian/TorchSeg model/bisenet/cityscapes.bisenet.X39 (the authors')",
           ("spatial_path.conv_7x7.conv.weight", "context_path.layer1.0.residual_branch.0.conv1.weight"),
           "heads.2.conv_1x1.weight", "cityscapes", ("cityscapes",), {"*": IMAGENET},
           reference_output="log_softmax"),
    Format("lednet", "lednet", {"apn_bias": True, "apn_bn_eps": 1e-3}, XIAOYUFENFEI_LEDNET,
           "xiaoyufenfei/LEDNet train/lednet.py (the author's)",
           ("encoder.initial_block.conv.weight", "decoder.apn.mid.0.conv.0.weight"), "decoder.apn.mid.0.conv.0.weight",
           "cityscapes", ("cityscapes",), {"*": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))},
           input_sizes={"cityscapes": (512, 1024)}),
    Format("torchvision-deeplabv3-resnet101", "deeplabv3", {"depth": 101, "output_stride": 8, "multi_grid": None},
           TORCHVISION_DEEPLABV3, "pytorch/vision deeplabv3_resnet101",
           ("classifier.0.convs.0.0.weight", _TORCHVISION_R101), "classifier.4.weight", "voc", ("voc",),
           {"*": IMAGENET}),
    Format("torchvision-deeplabv3-resnet50", "deeplabv3", {"depth": 50, "output_stride": 8, "multi_grid": None},
           TORCHVISION_DEEPLABV3, "pytorch/vision deeplabv3_resnet50", ("classifier.0.convs.0.0.weight",),
           "classifier.4.weight", "voc", ("voc",), {"*": IMAGENET}, absent=(_TORCHVISION_R101,)),
    Format("danet", "danet", {"depth": 101, "multi_grid": (1, 2, 4), "align_corners": True}, JUNFU_DANET,
           "junfu1115/DANet encoding/models/sseg/danet.py (the authors', ResNet-101, multi-grid 4/8/16)",
           ("head.sa.query_conv.weight", "pretrained.conv1.weight"), "head.conv8.1.weight", "cityscapes",
           ("cityscapes", "voc", "ade20k"), {"*": IMAGENET}, input_sizes={"cityscapes": (512, 1024)}),
    Format("acnet", "acnet", {"depth": 50, "depth_normalization": (2.8424503515351494, 0.9932836506164299)},
           ACNET, "anheidelonghu/ACNet ACNet_models_V1.py (the authors')", ("atten_rgb_0.1.weight", "conv1_d.weight"),
           "final_deconv.bias", "nyuv2", ("nyuv2",),
           {"*": ((0.4850042694973687, 0.41627756261047333, 0.3981809741523051),
                  (0.26415541082494515, 0.2728415392982039, 0.2831175140191598))}),
    Format("deeplab-largefov", "deeplabv1", {"pool5a": True}, DEEPLAB_LARGEFOV,
           "DeepLab v1 LargeFOV ported from the official prototxt (wangleihitcs/DeepLab-V1-PyTorch nets/vgg.py)",
           ("features.38.weight", "features.32.weight"), "features.38.weight", "voc", ("voc",),
           {"*": ((122.675 / 255, 116.669 / 255, 104.008 / 255), (1 / 255, 1 / 255, 1 / 255))}, bgr=True),
)}


def get_format(name: str) -> Format:
    """The format called ``name``; an unknown one is an :class:`EdgesegError` listing them all."""
    try:
        return FORMATS[name]
    except KeyError:
        raise EdgesegError(f"unknown format {name!r}; formats: {', '.join(FORMATS)} (edgeseg import --list)") from None


def matches(fmt: Format, keys) -> bool:
    """Whether a file with these (wrapper-free) keys looks like ``fmt``: its signature keys, none of its absent
    ones."""
    return all(k in keys for k in fmt.signature) and not any(k in keys for k in fmt.absent)


def identify(keys) -> list[str]:
    """The formats a file with these keys looks like (usually one, none for an unknown file)."""
    keys = set(keys)
    return [f.name for f in FORMATS.values() if matches(f, keys)]
