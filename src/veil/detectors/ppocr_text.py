"""Text (licence plates, signs, screens, name tags) with PP-OCR's text detector.

Only the detection network of the `rapidocr-onnxruntime` wheel is used (extra:
text): it outputs a per-pixel "this is text" probability, turned here into
boxes the DB way (threshold, contours, grow each region back by the margin the
network was trained to shrink). Nothing is read, so no OCR model is loaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..detections import TEXT, Detections
from ..errors import DetectorError
from .base import Detector, DetectorOptions
from .centerface import device_of, make_session

MODEL_FILE = "models/ch_PP-OCRv4_det_infer.onnx"
MIN_SIDE = 736  # the detector's trained scale: smaller frames are upscaled to it
ALIGN = 32
PIXEL_THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
MIN_BOX_SIDE = 3


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError("--targets text needs the text detector: pip install 'veil[text]'")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise DetectorError(
            f"text detector weights not found at {path}; reinstall rapidocr-onnxruntime"
        )
    return path


def input_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    scale = max(1.0, MIN_SIDE / min(height, width))
    if max_size and max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return (
        max(ALIGN, int(round(height * scale / ALIGN)) * ALIGN),
        max(ALIGN, int(round(width * scale / ALIGN)) * ALIGN),
    )


def boxes_from_probability(prob: np.ndarray, box_threshold: float = BOX_THRESHOLD) -> Detections:
    """Text regions of one probability map, as axis-aligned boxes in map pixels."""
    binary = cv2.dilate((prob > PIXEL_THRESHOLD).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < MIN_BOX_SIDE:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        inside = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(inside, [contour - [x, y]], 1)
        score = float(prob[y : y + bh, x : x + bw][inside > 0].mean())
        if score < box_threshold:
            continue
        grow = rw * rh * UNCLIP_RATIO / (2 * (rw + rh))
        corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle))
        boxes.append([*corners.min(axis=0), *corners.max(axis=0)])
        scores.append(score)
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        score=scores,
        class_id=np.full(len(boxes), TEXT),
    )


class PpocrText(Detector):
    """PP-OCRv4 text detection network on onnxruntime, one frame per run."""

    backend = "onnxruntime"

    def __init__(self, options: DetectorOptions = DetectorOptions()) -> None:
        self.options = options
        self.session = make_session(bundled_model_path(), options.device, options.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.device = device_of(self.session.get_providers()[0])

    def detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        ih, iw = input_size(h, w, self.options.max_size)
        image = cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_LINEAR)
        blob = ((image.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        prob = self.session.run(None, {self.input_name: blob})[0][0, 0]
        return boxes_from_probability(prob).scaled(w / iw, h / ih).clipped(w, h)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]
