"""Optical flow for label propagation: motion estimators, backward warping, and the forward-backward check.

A flow from frame A to frame B is H×W×2 float32 ``(dx, dy)`` on A's pixel grid: the pixel at ``x`` in A is at
``x + flow(x)`` in B. To synthesise B from A (backward warping) take the flow from B to A and sample A at
``x + flow_BA(x)``: bilinear for images, nearest for labels, as the official code of Zhu et al. (CVPR 2019) does
(``warp_bilinear`` / ``warp_nn``).

Estimators (:func:`motion_estimator`):

``dis``
    OpenCV's DIS optical flow (Kroeger et al., ECCV 2016), ``cv2.DISOpticalFlow_create`` with the medium preset
    on grey frames: CPU, permissively licensed, part of the ``camera`` extra. The default. (The paper's SDC-Net
    and its FlowNet2 are CUDA-only and licensed for non-commercial use only.)
``exact``
    The true motion of a synthetic sequence (:meth:`edgeseg.video.clips.Clip.exact_flow`): the oracle that
    tells the propagation's error apart from the flow's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.meta import IGNORE_INDEX
from edgeseg.video.clips import Clip

DIS_PRESETS = ("ultrafast", "fast", "medium")


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    return xx.astype(np.float32), yy.astype(np.float32)


def warp_nearest(labels: np.ndarray, flow: np.ndarray, fill: int = IGNORE_INDEX) -> np.ndarray:
    """``out(x) = labels(round(x + flow(x)))``; samples outside the frame, or where the flow is NaN, get ``fill``."""
    h, w = labels.shape[:2]
    xx, yy = _grid(h, w)
    with np.errstate(invalid="ignore"):
        sx, sy = np.rint(xx + flow[..., 0]), np.rint(yy + flow[..., 1])
        inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    ix = np.where(inside, sx, 0).astype(np.intp)
    iy = np.where(inside, sy, 0).astype(np.intp)
    out = labels[iy, ix]
    out[~inside] = fill
    return out


def warp_bilinear(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out(x) = image(x + flow(x))`` sampled bilinearly (float32), and the mask of pixels whose sample lies inside
    the frame (elsewhere ``out`` is 0)."""
    h, w = image.shape[:2]
    xx, yy = _grid(h, w)
    with np.errstate(invalid="ignore"):
        sx, sy = xx + flow[..., 0], yy + flow[..., 1]
        inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    sx, sy = np.where(inside, sx, 0), np.where(inside, sy, 0)
    x0, y0 = np.minimum(np.floor(sx), w - 2).astype(np.intp), np.minimum(np.floor(sy), h - 2).astype(np.intp)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = sx - x0, sy - y0
    src = image.astype(np.float32)
    if src.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    out = ((src[y0, x0] * (1 - fx) + src[y0, x1] * fx) * (1 - fy)
           + (src[y1, x0] * (1 - fx) + src[y1, x1] * fx) * fy)
    out[~inside] = 0
    return out.astype(np.float32), inside


@dataclass(frozen=True)
class ConsistencyCheck:
    """The forward-backward check of Sundaram, Brox and Keutzer (ECCV 2010): a pixel of B whose flow to A and the
    flow from A back to B, taken where it lands, do not cancel is occluded or mis-tracked. Inconsistent when
    ``|f_BA(x) + f_AB(x + f_BA(x))|² > alpha (|f_BA|² + |f_AB|²) + beta``. Not part of Zhu et al.; an addition
    here, on by default in ``edgeseg propagate``."""

    alpha: float = 0.01
    beta: float = 0.5

    def inconsistent(self, flow_ba: np.ndarray, flow_ab: np.ndarray) -> np.ndarray:
        """Boolean H×W mask over B's pixels (``flow_ba`` from B to A, ``flow_ab`` from A to B)."""
        back, inside = warp_bilinear(flow_ab, flow_ba)
        total = flow_ba + back
        with np.errstate(invalid="ignore"):
            bad = (total ** 2).sum(-1) > self.alpha * ((flow_ba ** 2).sum(-1) + (back ** 2).sum(-1)) + self.beta
        return bad | ~inside | ~np.isfinite(total).all(-1)


class MotionEstimator:
    """Base class: ``flow(clip, source, target)`` is the flow from the frame at offset ``source`` to the frame at
    offset ``target``; ``params()`` what a manifest records to reproduce it."""

    name = "estimator"

    def flow(self, clip: Clip, source: int, target: int) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict:
        return {"name": self.name}


class DISFlow(MotionEstimator):
    """OpenCV DIS optical flow on the grey frames (OpenCV converts the same way on every machine)."""

    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise EdgesegError(f"unknown DIS preset {preset!r}; choose {', '.join(DIS_PRESETS)}")
        from edgeseg.runtime.sources import cv2_module

        self.cv2 = cv2_module()
        self.preset = preset
        code = getattr(self.cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        self.dis = self.cv2.DISOpticalFlow_create(code)

    def flow(self, clip: Clip, source: int, target: int) -> np.ndarray:
        grey = [self.cv2.cvtColor(np.ascontiguousarray(clip.frame(k)), self.cv2.COLOR_RGB2GRAY)
                for k in (source, target)]
        return self.dis.calc(grey[0], grey[1], None).astype(np.float32)

    def params(self) -> dict:
        return {"name": self.name, "preset": self.preset, "opencv": self.cv2.__version__}


class ExactFlow(MotionEstimator):
    """The clip's true motion (synthetic sequences only)."""

    name = "exact"

    def flow(self, clip: Clip, source: int, target: int) -> np.ndarray:
        flow = clip.exact_flow(source, target)
        if flow is None:
            raise EdgesegError(f"{clip.name}: the exact flow is known for synthetic sequences only; use --flow dis")
        return flow


ESTIMATORS = {"dis": DISFlow, "exact": ExactFlow}


def motion_estimator(name: str) -> MotionEstimator:
    """The estimator ``name`` (dis or exact)."""
    if name not in ESTIMATORS:
        raise EdgesegError(f"unknown flow {name!r}; choose {' or '.join(ESTIMATORS)}")
    return ESTIMATORS[name]()
