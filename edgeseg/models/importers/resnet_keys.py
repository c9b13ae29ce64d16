"""Key maps of the ResNet-based releases: torchvision's DeepLabV3, the authors' DANet and ACNet.

Their trunks already use torchvision's key names (``conv1``, ``bn1``, ``layerN.i.convJ``, ``downsample``), as
edgeseg's :class:`~edgeseg.models.backbones.resnet.ResNet` does; only the prefixes and the heads differ.
"""

from __future__ import annotations

from edgeseg.models.importers.keymap import KeyMap

# torchvision.models.segmentation.deeplabv3_resnet{50,101}: DeepLabHead = [ASPP, 3×3 conv, BN, ReLU, 1×1 conv].
TORCHVISION_DEEPLABV3 = KeyMap(
    rules=[
        (r"^classifier\.0\.convs\.([0-3])\.0\.", r"aspp.branches.\1.conv."),
        (r"^classifier\.0\.convs\.([0-3])\.1\.", r"aspp.branches.\1.bn."),
        (r"^classifier\.0\.convs\.4\.1\.", "aspp.image_pool.conv."),
        (r"^classifier\.0\.convs\.4\.2\.", "aspp.image_pool.bn."),
        (r"^classifier\.0\.project\.0\.", "aspp.project.conv."),
        (r"^classifier\.0\.project\.1\.", "aspp.project.bn."),
        (r"^classifier\.1\.", "head.conv."),
        (r"^classifier\.2\.", "head.bn."),
        (r"^classifier\.4\.", "cls."),
    ],
    unused=[r"aux_classifier\."],  # the FCN head on layer3, trained alongside, never run at inference
)

# junfu1115/DANet encoding/models/sseg/danet.py: the trunk under ``pretrained``, DANetHead under ``head``.
# conv6 / conv7 are the PAM-only and CAM-only classifiers trained alongside: edgeseg's aux heads.
JUNFU_DANET = KeyMap(
    rules=[
        (r"^pretrained\.", "backbone."),
        (r"^head\.conv5a\.0\.", "pam_in.conv."),
        (r"^head\.conv5a\.1\.", "pam_in.bn."),
        (r"^head\.conv5c\.0\.", "cam_in.conv."),
        (r"^head\.conv5c\.1\.", "cam_in.bn."),
        (r"^head\.sa\.(query|key|value)_conv\.", r"pam.\1."),
        (r"^head\.sa\.gamma$", "pam.gamma"),
        (r"^head\.sc\.gamma$", "cam.gamma"),
        (r"^head\.conv51\.0\.", "pam_out.conv."),
        (r"^head\.conv51\.1\.", "pam_out.bn."),
        (r"^head\.conv52\.0\.", "cam_out.conv."),
        (r"^head\.conv52\.1\.", "cam_out.bn."),
        (r"^head\.conv8\.", "cls."),
        (r"^head\.conv6\.", "aux_heads.pam."),
        (r"^head\.conv7\.", "aux_heads.cam."),
    ],
)

# anheidelonghu/ACNet ACNet_models_V1.py: RGB trunk at the top level, the depth trunk's names end in ``_d``, the
# fusion trunk's in ``_m``; attention ``atten_{rgb,depth}_i`` = [pool, 1×1 conv, sigmoid]; RedNet-style decoder.
ACNET = KeyMap(
    rules=[
        (r"^(conv1|bn1)_d\.", r"depth.\1."),
        (r"^layer(\d)_d\.", r"depth.layer\1."),
        (r"^layer(\d)_m\.", r"fusion.layer\1."),
        (r"^(conv1|bn1|layer\d)\.", r"rgb.\1."),
        (r"^atten_rgb_(\d)\.1\.", r"acm.\1.rgb_gate.fc.0."),
        (r"^atten_depth_(\d)\.1\.", r"acm.\1.depth_gate.fc.0."),
        (r"^agant(\d)\.0\.", r"agant.\1.conv."),
        (r"^agant(\d)\.1\.", r"agant.\1.bn."),
        (r"^deconv(\d)\.", lambda m: f"up.{int(m.group(1)) - 1}."),
        (r"^final_conv\.", "final."),
        (r"^(up\.\d|final)\.(\d+)\.conv1\.", r"\1.\2.conv1.conv."),
        (r"^(up\.\d|final)\.(\d+)\.bn1\.", r"\1.\2.conv1.bn."),
        (r"^(up\.\d|final)\.(\d+)\.upsample\.", r"\1.\2.shortcut."),
        (r"^out(\d)_conv\.", r"aux_heads.out\1."),
    ],
)
