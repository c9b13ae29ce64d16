"""CRF parameters shared by ConvCRF (torch, ONNX, TensorRT) and the dense CRF reference (pydensecrf2).

One parameter set serves both, in the dense CRF's units (Krähenbühl & Koltun, 2011): kernel widths in
full-resolution pixels and RGB levels 0-255, kernel weights as Potts compatibilities on normalised kernels.
Defaults: the appearance (bilateral) kernel σα = 80 px, σβ = 13 and the smoothness kernel w2 = σγ = 3 from
Krähenbühl's and ConvCRF's published settings, w1 = 4 from the middle of DeepLab's cross-validated range
(w1 ∈ [3, 5] in the DeepLab paper), and ConvCRF's filter 7 (of 7 or 11), blur 4, 5 mean-field iterations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgeseg.errors import EdgesegError

COMPATIBILITIES = ("potts", "learned")


@dataclass(frozen=True)
class CRFParams:
    filter_size: int = 7  # ConvCRF window on the blurred grid (odd)
    blur: int = 4  # the grid is the image average-pooled by this factor
    iterations: int = 5
    bilateral_weight: float = 4.0  # w1
    bilateral_sigma_xy: float = 80.0  # σα, pixels
    bilateral_sigma_rgb: float = 13.0  # σβ, RGB levels
    gaussian_weight: float = 3.0  # w2
    gaussian_sigma_xy: float = 3.0  # σγ, pixels
    compatibility: str = "potts"  # or "learned": a 1×1 class-compatibility matrix initialised to Potts

    def validate(self) -> CRFParams:
        if self.filter_size < 3 or self.filter_size % 2 == 0:
            raise EdgesegError(f"CRF filter size must be an odd number ≥ 3, got {self.filter_size}")
        if self.blur < 1 or self.iterations < 1:
            raise EdgesegError("CRF blur and iterations must be at least 1")
        if min(self.bilateral_sigma_xy, self.bilateral_sigma_rgb, self.gaussian_sigma_xy) <= 0:
            raise EdgesegError("CRF kernel widths (σ) must be positive")
        if min(self.bilateral_weight, self.gaussian_weight) < 0:
            raise EdgesegError("CRF kernel weights cannot be negative")
        if self.compatibility not in COMPATIBILITIES:
            raise EdgesegError(f"CRF compatibility must be one of {', '.join(COMPATIBILITIES)}")
        return self

    def check_size(self, size: tuple[int, int]) -> None:
        """The blurred grid must tile the image exactly (the exported graph has no ceil-mode pooling)."""
        if size[0] % self.blur or size[1] % self.blur:
            raise EdgesegError(f"the CRF blur {self.blur} must divide the input size {size[0]}x{size[1]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CRFParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()
