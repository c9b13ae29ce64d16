"""edgeseg: real-time semantic segmentation from PyTorch to the camera, with the numbers to prove each engine.

Importing this package is cheap: it imports neither torch nor onnx. The torch side lives in
:mod:`edgeseg.models` (and later ``edgeseg.data`` / ``edgeseg.train``); the deployment side in
:mod:`edgeseg.export`, :mod:`edgeseg.calibration` and :mod:`edgeseg.runtime` (which never imports torch).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
