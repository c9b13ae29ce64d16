"""What ``edgeseg propagate`` writes and measures: a ``folder:`` dataset of propagated pairs, and per-step stats.

The folder (``edgeseg.data.folder``'s layout, so ``folder:OUT/images,OUT/labels`` trains on it)::

    OUT/images/<id>_<±k>.png     the pair's image: the synthesised frame (joint) or the real one (label)
    OUT/labels/<id>_<±k>.png     class indices, 255 = ignore (outside the frame, or dropped by the consistency check)
    OUT/classes.txt              the source dataset's classes and colours
    OUT/manifest.json            how it was made (mode, flow, steps, check) and every pair's source and offset

``<id>`` is the labelled sample's id, ``<±k>`` the frame offset (``+00`` the labelled frame itself, with
``--with-centre``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.fileio import FolderKind
from edgeseg.meta import IGNORE_INDEX
from edgeseg.metrics import ConfusionMatrix
from edgeseg.runtime.overlay import save_label_png
from edgeseg.video.propagate import Propagated, psnr

MANIFEST = "manifest.json"
FORMAT = "edgeseg-propagated"
FORMAT_VERSION = 1
IMAGES, LABELS, CLASSES = "images", "labels", "classes.txt"
PROPAGATED_KIND = FolderKind(MANIFEST, FORMAT, "edgeseg propagated dataset",
                             lambda document: [IMAGES, LABELS, CLASSES])


def safe_id(text: str) -> str:
    """A sample id as a file-name part: letters, digits, ``_ - .``; anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".") or "sample"


class FolderWriter:
    """Writes pairs into a staging folder (see :func:`edgeseg.fileio.staged_dir`) and the manifest at the end."""

    def __init__(self, root: Path, classes: list[str], palette: list) -> None:
        self.root, self.classes, self.palette = root, classes, palette
        (root / IMAGES).mkdir()
        (root / LABELS).mkdir()
        self.entries: list[dict] = []
        self.names: set[str] = set()

    def add(self, sample: str, offset: int, image: np.ndarray, label: np.ndarray, frame: str) -> str:
        """Write one pair; returns its file stem (unique in the folder)."""
        base = f"{safe_id(sample)}_{offset:+03d}"
        name, n = base, 1
        while name in self.names:
            name, n = f"{base}_{n}", n + 1
        self.names.add(name)
        Image.fromarray(image).save(self.root / IMAGES / f"{name}.png", format="PNG")
        save_label_png(self.root / LABELS / f"{name}.png", label, self.palette)
        self.entries.append({"image": f"{IMAGES}/{name}.png", "label": f"{LABELS}/{name}.png", "sample": sample,
                             "offset": offset, "frame": frame})
        return name

    def finish(self, method: dict, stats: list[dict], skipped: dict) -> None:
        lines = [f"{name} {r} {g} {b}" for name, (r, g, b) in zip(self.classes, self.palette)]
        (self.root / CLASSES).write_text("\n".join(lines) + "\n", encoding="utf-8")
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "method": method, "skipped": skipped,
                    "steps": stats, "pairs": self.entries}
        (self.root / MANIFEST).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


@dataclass
class _Step:
    pairs: int = 0
    pixels: int = 0
    labelled: int = 0
    masked: int = 0
    psnr: list = field(default_factory=list)
    truth: int = 0  # pixels the true label knows
    covered: int = 0  # of those, pixels the propagated label also gives
    confusion: ConfusionMatrix | None = None


class StepStats:
    """Per-offset counts: labelled fraction, pixels dropped by the consistency check, PSNR of the synthesised
    frame against the real one (over its labelled pixels), and, when the true labels are known, the propagated
    label's pixel accuracy and mIoU against them (over pixels both give) and its coverage."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.steps: dict[int, _Step] = {}

    def add(self, pair: Propagated, real: np.ndarray, truth: np.ndarray | None) -> None:
        s = self.steps.setdefault(pair.offset, _Step())
        labelled = pair.label != IGNORE_INDEX
        s.pairs += 1
        s.pixels += labelled.size
        s.labelled += int(labelled.sum())
        s.masked += int(pair.masked.sum())
        value = psnr(pair.synthesised, real, pair.inside & labelled)
        if value is not None:
            s.psnr.append(value)
        if truth is not None:
            known = truth != IGNORE_INDEX
            s.truth += int(known.sum())
            s.covered += int((known & labelled).sum())
            if s.confusion is None:
                s.confusion = ConfusionMatrix(self.num_classes)
            s.confusion.update(np.where(labelled, pair.label, 0), np.where(labelled, truth, IGNORE_INDEX))

    def rows(self) -> list[dict]:
        """One record per offset, in the order -K..-1, +1..+K."""
        out = []
        for offset in sorted(self.steps):
            s = self.steps[offset]
            finite = [v for v in s.psnr if np.isfinite(v)]
            row = {"offset": offset, "pairs": s.pairs, "labelled": round(s.labelled / max(s.pixels, 1), 4),
                   "dropped_by_check": round(s.masked / max(s.pixels, 1), 4),
                   "psnr_db": round(float(np.mean(finite)), 2) if finite else None}
            if s.confusion is not None:
                scores = s.confusion.compute()
                row.update(pixel_acc=round(scores["pixel_acc"], 4), miou=round(scores["miou"], 4),
                           coverage=round(s.covered / max(s.truth, 1), 4))
            out.append(row)
        return out
