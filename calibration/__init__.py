"""edgeseg.calibration: calibration readers, Q/DQ quantization, TensorRT calibration cache.

Installed as ``edgeseg.calibration`` (setuptools ``package-dir``).
"""
