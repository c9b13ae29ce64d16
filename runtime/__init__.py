"""edgeseg.runtime: runners, CUDA layer, engine build, stream pipeline, benchmarks (issues 4, 6, 7).

Installed as ``edgeseg.runtime`` (setuptools ``package-dir``). This package never imports torch: it is what
runs on a Jetson next to TensorRT. A test imports it in a fresh interpreter and fails if torch got loaded.
"""
