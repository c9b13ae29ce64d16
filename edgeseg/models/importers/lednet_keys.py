"""Key map of the author's LEDNet (xiaoyufenfei/LEDNet ``train/lednet.py``)."""

from __future__ import annotations

from edgeseg.models.importers.keymap import KeyMap

_SIDES = {"l": ("left", "3x1", "1x3"), "r": ("right", "1x3", "3x1")}  # (branch, first kernel, second kernel)

XIAOYUFENFEI_LEDNET = KeyMap(
    rules=[
        (r"^encoder\.initial_block\.", "encoder.0."),
        (r"^encoder\.layers\.(\d+)\.", lambda m: f"encoder.{int(m.group(1)) + 1}."),
        *[(rf"\.conv{k}_{i}_{side}\.", f".{branch}.conv{i}{'a' if k == first else 'b'}.")
          for side, (branch, first, second) in _SIDES.items() for k in (first, second) for i in (1, 2)],
        (r"\.bn(\d)_l\.", r".left.bn\1."),
        (r"\.bn(\d)_r\.", r".right.bn\1."),
        (r"^decoder\.apn\.branch1\.1\.", "decoder.glob."),
        (r"^decoder\.apn\.mid\.0\.", "decoder.mid."),
        (r"^decoder\.apn\.", "decoder."),
        (r"^(decoder\..*)\.conv\.0\.", r"\1.conv."),
        (r"^(decoder\..*)\.conv\.1\.", r"\1.bn."),
    ],
    unused=[r"encoder\.output_conv\."],  # the encoder-only pre-training classifier
)
