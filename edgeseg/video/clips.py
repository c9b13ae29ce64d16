"""A clip: the frames around one labelled frame, addressed by their offset from it (0 is the labelled frame).

Propagation reads frames through this interface only, so a folder of recorded frames
(:class:`edgeseg.video.frames.FolderClip`) and a synthetic sequence with exact motion
(:class:`edgeseg.video.sequences.FrameSequence`) are used the same way.
"""

from __future__ import annotations

import numpy as np


class Clip:
    """Base class. ``frame(k)`` is the real frame at offset ``k`` (uint8 H×W×3 RGB); ``has(k)`` whether it exists.
    Clips that know the truth (synthetic sequences) also answer ``exact_flow`` and ``true_label``; others return
    None."""

    name = "clip"

    def has(self, offset: int) -> bool:
        raise NotImplementedError

    def frame(self, offset: int) -> np.ndarray:
        raise NotImplementedError

    def exact_flow(self, source: int, target: int) -> np.ndarray | None:
        """The true motion from frame ``source`` to frame ``target`` (H×W×2 float32, x then y; NaN where a pixel
        shows nothing known), or None when the clip does not know it."""
        return None

    def true_label(self, offset: int) -> np.ndarray | None:
        """The exact label map of frame ``offset`` (255 where unknown), or None when the clip does not know it."""
        return None
