"""CRF post-processing: ConvCRF (:mod:`edgeseg.crf.convcrf`, torch; exported to ONNX / TensorRT) and the
parameters it shares with the dense CRF reference. Importing this package does not import torch."""

from edgeseg.crf.params import CRFParams

__all__ = ["CRFParams"]
