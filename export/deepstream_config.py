"""The text files of a DeepStream folder: nvinfer's ``[property]`` key file, its labels, a ``deepstream-app``
config, a ``gst-launch-1.0`` line and a README. Pure functions of their settings (no onnx, no file writing).

Every key is one DeepStream documents and reads with GLib's key-file parser (``gstnvinfer_property_parser.cpp``
for nvinfer, ``deepstream_config_file_parser.c`` for deepstream-app): integers, ``0``/``1`` booleans, floats,
``;``-separated lists, and paths that nvinfer resolves against the config file's own folder. GLib takes ``#``
comments on lines of their own only (``key=1 # note`` is not the integer 1), so every comment here has its own
line. Keys: https://docs.nvidia.com/metropolis/deepstream/dev-guide/text/DS_plugin_gst-nvinfer.html and
https://docs.nvidia.com/metropolis/deepstream/dev-guide/text/DS_ref_app_deepstream.html
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.errors import EdgesegError

NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer's network-mode
SEGMENTATION = 2  # network-type
PRIMARY = 1  # process-mode: whole frames
NCHW = 0  # segmentation-output-order
RGB = 0  # model-color-format
BILINEAR = 1  # scaling-filter: NvBufSurfTransformInter_Bilinear, as edgeseg's host resize
CSI_CAMERA = 5  # deepstream-app [source] type: NV_DS_SOURCE_CAMERA_CSI (nvarguscamerasrc)
SINK_RENDER = 2  # deepstream-app [sink] type on Jetson: NV_DS_SINK_RENDER_3D (nv3dsink)
CAMERA = (1920, 1080, 30)  # width, height, frames per second of the CSI camera the app config opens
CROP_NOTE = ("edgeseg fits frames by 'crop' (scale to cover, cut the centre), which nvinfer cannot express: "
             "nvinfer stretches each frame to infer-dims instead, so accuracy differs from edgeseg's eval")


def engine_file_name(onnx_file: str, batch: int, precision: str, gpu_id: int = 0, dla_core: int | None = None) -> str:
    """The name nvinfer serialises the engine it builds to (``TrtModelBuilder::buildModel``):
    ``<onnx-file>_b<batch>_<gpu<id>|dla<core>>_<fp32|fp16|int8>.engine``, beside the ONNX file."""
    device = f"dla{dla_core}" if dla_core is not None else f"gpu{gpu_id}"
    return f"{onnx_file}_b{batch}_{device}_{precision}.engine"


def labels_text(classes: list[str]) -> str:
    """nvinfer's label file: one class per line in class order (it splits a line at ``;`` and skips empty
    lines, so such names would shift every class after them: refused)."""
    for i, name in enumerate(classes):
        if not name.strip() or any(c in name for c in ";\r\n"):
            raise EdgesegError(f"class {i} is named {name!r}: nvinfer's label file cannot hold an empty name or one "
                               f"with ';' or a line break")
    return "".join(f"{name}\n" for name in classes)


@dataclass(frozen=True)
class NvinferSettings:
    """What the ``[property]`` group says: the files (relative to the config), the network and the build."""

    model: str
    onnx_file: str
    labels_file: str
    size: tuple[int, int]  # (H, W) of the network input
    num_classes: int
    batch: int
    precision: str
    resize: str  # the bundle's: stretch, letterbox or crop
    output: str
    calib_file: str | None = None
    dla_core: int | None = None
    gpu_id: int = 0
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.precision not in NETWORK_MODES:
            raise EdgesegError(f"precision must be one of {', '.join(NETWORK_MODES)}, got {self.precision!r}")
        if (self.precision == "int8") != (self.calib_file is not None):
            raise EdgesegError("network-mode=1 (int8) needs int8-calib-file, and only int8 takes one")

    @property
    def engine_file(self) -> str:
        return engine_file_name(self.onnx_file, self.batch, self.precision, self.gpu_id, self.dla_core)

    def resize_keys(self) -> tuple[list[tuple[str, str]], str | None]:
        """``maintain-aspect-ratio`` (and ``symmetric-padding``) for the bundle's resize mode, and a note when
        nvinfer cannot do what the bundle does."""
        if self.resize == "letterbox":  # scale to fit, pad both sides with black: edgeseg centres the frame too
            return [("maintain-aspect-ratio", "1"), ("symmetric-padding", "1")], None
        if self.resize == "crop":
            return [("maintain-aspect-ratio", "0")], CROP_NOTE
        return [("maintain-aspect-ratio", "0")], None

    def text(self, header: list[str] = ()) -> str:
        """The key file, ``header`` lines first (as comments)."""
        h, w = self.size
        aspect, note = self.resize_keys()
        lines = [f"# {line}" for line in header] + [
            "# Input: float32 NCHW RGB in 0-255 (net-scale-factor=1, no offsets); the model's per-channel mean and",
            "# std are applied inside the graph. Output: probs, float32 NCHW class probabilities; nvinfer's class",
            "# map is their ArgMax (segmentation-threshold=0; a higher threshold marks less confident pixels -1).",
            "[property]",
            f"gpu-id={self.gpu_id}",
            f"onnx-file={self.onnx_file}",
            "# nvinfer builds this engine from onnx-file on the first run and reuses it after",
            f"model-engine-file={self.engine_file}",
        ]
        if self.calib_file is not None:
            lines.append(f"int8-calib-file={self.calib_file}")
        lines += [
            f"labelfile-path={self.labels_file}",
            f"batch-size={self.batch}",
            f"network-mode={NETWORK_MODES[self.precision]}",
            f"network-type={SEGMENTATION}",
            f"process-mode={PRIMARY}",
            "gie-unique-id=1",
            f"infer-dims=3;{h};{w}",
            f"model-color-format={RGB}",
            "net-scale-factor=1.0",
        ]
        if note is not None:
            lines.append(f"# {note}")
        lines += [f"{k}={v}" for k, v in aspect]
        lines += [
            f"scaling-filter={BILINEAR}",
            f"num-detected-classes={self.num_classes}",
            f"output-blob-names={self.output}",
            f"segmentation-output-order={NCHW}",
            f"segmentation-threshold={float(self.threshold)!r}",
        ]
        if self.dla_core is not None:
            lines += ["enable-dla=1", f"use-dla-core={self.dla_core}"]
        return "\n".join(lines) + "\n"


def app_config_text(infer_config: str, batch: int, header: list[str] = ()) -> str:
    """A ``deepstream-app -c`` config: CSI camera 0 (nvarguscamerasrc) → nvstreammux → nvinfer (``infer_config``)
    → nvsegvisual → an on-screen sink; one camera, so the muxer pushes batches of ``batch`` frames of it."""
    width, height, fps = CAMERA
    groups = {
        "application": {"enable-perf-measurement": 1, "perf-measurement-interval-sec": 5},
        "source0": {"enable": 1, "type": CSI_CAMERA, "camera-csi-sensor-id": 0, "camera-width": width,
                    "camera-height": height, "camera-fps-n": fps, "camera-fps-d": 1, "gpu-id": 0},
        "streammux": {"gpu-id": 0, "live-source": 1, "batch-size": batch, "batched-push-timeout": 40000,
                      "width": width, "height": height},
        "primary-gie": {"enable": 1, "gpu-id": 0, "gie-unique-id": 1, "batch-size": batch,
                        "config-file": infer_config},
        "segvisual": {"enable": 1, "gpu-id": 0, "batch-size": batch, "width": width, "height": height},
        "tiled-display": {"enable": 1, "rows": 1, "columns": 1, "width": width, "height": height, "gpu-id": 0},
        "osd": {"enable": 0},
        "sink0": {"enable": 1, "type": SINK_RENDER, "sync": 0, "gpu-id": 0},
    }
    lines = [f"# {line}" for line in header]
    for name, keys in groups.items():
        lines += [f"[{name}]", *(f"{k}={v}" for k, v in keys.items()), ""]
    return "\n".join(lines)


def gst_launch_text(infer_config: str, batch: int) -> str:
    """The same pipeline as one ``gst-launch-1.0`` line (run it in the folder: the config path is relative)."""
    width, height, fps = CAMERA
    return (f"gst-launch-1.0 nvarguscamerasrc sensor-id=0 ! "
            f"'video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1,format=NV12' ! "
            f"nvvideoconvert ! m.sink_0 nvstreammux name=m batch-size={batch} width={width} height={height} "
            f"live-source=1 ! nvinfer config-file-path={infer_config} ! "
            f"nvsegvisual batch-size={batch} width={width} height={height} ! nvvideoconvert ! nv3dsink sync=false\n")


def readme_text(model: str, infer_config: str, engine_file: str, notes: list[str]) -> str:
    """How to run the folder on a Jetson."""
    width, height, fps = CAMERA
    lines = [
        f"DeepStream deployment of {model}, written by edgeseg deploy deepstream.",
        "",
        "Needs: a Jetson with JetPack 6.1 or newer and DeepStream 7.1 (TensorRT 10.3), a CSI camera on sensor 0.",
        "Run from this folder (the configs use relative paths):",
        "",
        "    deepstream-app -c deepstream_app_config.txt",
        "    # or, the same pipeline by hand:",
        "    sh gst-launch.txt",
        "",
        f"The first run builds the TensorRT engine from the ONNX file (minutes) and writes {engine_file} here;",
        "later runs load it. Delete it after changing the config's precision, batch or DLA keys.",
        f"The camera is opened at {width}x{height}, {fps} fps: edit [source0] and [streammux] for another mode.",
        f"Point your own pipeline's nvinfer at {infer_config}; nvinfer attaches the class map as",
        "NvDsInferSegmentationMeta (class_map, and class_probability_map from the graph's probs output).",
        *notes,
    ]
    return "\n".join(lines) + "\n"
