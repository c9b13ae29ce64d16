"""Host (PIL bilinear, antialiased on a downscale) vs in-graph (ONNX Resize linear, half_pixel, no antialias:
TensorRT has none) frame resize of a 1080p frame, as docs/run.md's "Pixel work in the graph" quotes it.
CPU only, a few seconds: ``.venv/bin/python benchmarks/frame_resize.py``."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from edgeseg.data import open_dataset
from edgeseg.data.geometry import frame_to_input, placement
from edgeseg.models.frame_graph import FrameIn


def main() -> None:
    torch.set_num_threads(1)
    scene = np.asarray(Image.fromarray(open_dataset("synthetic:2", "val")[0][0]).resize((1920, 1080),
                                                                                        Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    noisy = np.clip(scene.astype(int) + rng.integers(-40, 41, scene.shape), 0, 255).astype(np.uint8)
    for name, frame in (("smooth scene", scene), ("scene + noise", noisy)):
        for size, mode in (((512, 1024), "stretch"), ((512, 1024), "letterbox"), ((256, 512), "stretch")):
            where = placement(frame.shape[:2], size, mode)
            graph, _ = FrameIn(where, frame.shape[:2])(torch.from_numpy(frame.copy())[None], torch.float32)
            d = np.abs(graph[0].permute(1, 2, 0).numpy() - frame_to_input(frame, size, mode).astype(np.float32))
            print(f"{name:14s} 1080x1920 -> {size[0]}x{size[1]} {mode:9s}: mean |d| {d.mean():.2f}, "
                  f"p99 {np.percentile(d, 99):.1f}, max {d.max():.0f} (of 255)")


if __name__ == "__main__":
    main()
