"""Where two engines' labels differ: the fraction of pixels over a data split (an fp16 or int8 engine against
its fp32 reference) and the mismatch mask of one image (numpy and zlib only)."""

from __future__ import annotations

import zlib

import numpy as np

# Compressed bytes of reference predictions kept in memory per reference engine (label maps compress 20-100x:
# enough for thousands of Cityscapes images); images beyond it are left out of the agreement, which says how
# many it covers.
REFERENCE_BYTES = 128 * 2**20


def disagreement(labels: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """The mask of pixels where ``labels`` differ from ``reference`` and the fraction of such pixels."""
    if labels.shape != reference.shape:
        raise ValueError(f"label maps of shapes {labels.shape} and {reference.shape} cannot be compared")
    mask = np.asarray(labels) != np.asarray(reference)
    return mask, float(mask.mean()) if mask.size else 0.0


class ReferenceLabels:
    """A reference engine's predictions, image by image (``record(index, labels)``), compressed, up to
    :data:`REFERENCE_BYTES`."""

    def __init__(self, row_id: str, budget: int = REFERENCE_BYTES) -> None:
        self.row_id, self.budget, self.used, self.full = row_id, budget, 0, False
        self.maps: dict[int, tuple[bytes, tuple[int, ...]]] = {}

    def record(self, index: int, labels: np.ndarray) -> None:
        if self.full:
            return
        labels = np.ascontiguousarray(labels, np.uint8)
        packed = zlib.compress(labels.tobytes(), 1)
        if self.used + len(packed) > self.budget:
            self.full = True  # keep a prefix of the split: the agreement covers images 0..k-1
            return
        self.maps[index] = (packed, labels.shape)
        self.used += len(packed)

    def get(self, index: int) -> np.ndarray | None:
        if index not in self.maps:
            return None
        packed, shape = self.maps[index]
        return np.frombuffer(zlib.decompress(packed), np.uint8).reshape(shape)


class AgreementCounter:
    """Counts, image by image (``add(index, labels)``), the pixels where an engine agrees with a
    :class:`ReferenceLabels`; images the reference did not keep are skipped."""

    def __init__(self, reference: ReferenceLabels) -> None:
        self.reference, self.same, self.pixels, self.images = reference, 0, 0, 0

    def add(self, index: int, labels: np.ndarray) -> None:
        ref = self.reference.get(index)
        if ref is None or ref.shape != labels.shape:
            return
        mask, _ = disagreement(labels, ref)
        self.same += int(mask.size - mask.sum())
        self.pixels += int(mask.size)
        self.images += 1

    def to_dict(self) -> dict | None:
        """``{"reference", "label_agreement", "images", "pixels"}``, or None when no image was compared."""
        if not self.pixels:
            return None
        return {"reference": self.reference.row_id, "label_agreement": self.same / self.pixels,
                "images": self.images, "pixels": self.pixels}
