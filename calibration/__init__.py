"""edgeseg.calibration: calibration readers, Q/DQ quantization, TensorRT calibration cache (issue 5).

Installed as ``edgeseg.calibration`` (setuptools ``package-dir``).
"""
