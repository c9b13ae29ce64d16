"""edgeseg.export: the deploy graph, ONNX export, simplification, verification and lint.

Installed as ``edgeseg.export`` (setuptools ``package-dir``), never as a top-level ``export`` package.
"""
