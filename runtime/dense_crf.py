"""The dense CRF reference: Krähenbühl & Koltun's fully connected CRF with the permutohedral lattice
("Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials", NIPS 2011), through pydensecrf2
(``pip install edgeseg[crf]``). CPU only, seconds per frame at 512×1024: the quality reference for ConvCRF and
``edgeseg run --crf dense``. Same parameters as ConvCRF (:class:`edgeseg.crf.params.CRFParams`)."""

from __future__ import annotations

import numpy as np

from edgeseg.crf.params import CRFParams
from edgeseg.errors import EdgesegError


def load_densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise EdgesegError("the dense CRF needs pydensecrf2: pip install edgeseg[crf] (or pip install "
                           "pydensecrf2)") from exc
    return dcrf


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def dense_crf(logits: np.ndarray, image: np.ndarray, params: CRFParams | None = None) -> np.ndarray:
    """Labels (H, W) uint8 from logits (C, H, W) and the RGB image (H, W, 3) uint8."""
    p = params or CRFParams()
    dcrf = load_densecrf()
    c, h, w = logits.shape
    if image.shape != (h, w, 3) or image.dtype != np.uint8:
        raise EdgesegError(f"dense CRF: the image must be {h}x{w}x3 uint8, got {'x'.join(map(str, image.shape))} "
                           f"{image.dtype}")
    crf = dcrf.DenseCRF2D(w, h, c)
    probs = softmax(logits.astype(np.float32))
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(probs, 1e-8, 1.0)).reshape(c, -1), np.float32))
    crf.addPairwiseGaussian(sxy=p.gaussian_sigma_xy, compat=p.gaussian_weight)
    crf.addPairwiseBilateral(sxy=p.bilateral_sigma_xy, srgb=p.bilateral_sigma_rgb, rgbim=np.ascontiguousarray(image),
                             compat=p.bilateral_weight)
    q = np.asarray(crf.inference(p.iterations), np.float32).reshape(c, h, w)
    return q.argmax(axis=0).astype(np.uint8)
