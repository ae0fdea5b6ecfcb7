"""The user's own detector: a YOLO model exported to ONNX in the ultralytics layout.

`--detector onnx:model.onnx` runs it instead of the face detector. The layout is
the one `yolo export format=onnx` writes: input [1, 3, H, W] RGB in 0..1, output
[1, 4 + classes, N] with box centre x, centre y, width, height in input pixels
followed by one score per class (no objectness column). `--classes` keeps some
classes ("0,2") and may label them as veil targets ("0=person,2=face") so that
per-target filters and labels apply; unlabelled classes keep the model's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..detections import CLASS_NAMES, Detections, nms
from ..errors import DetectorError, OptionError
from .base import DetectorOptions

DEFAULT_INPUT = 640
NMS_IOU = 0.45
PAD_VALUE = 114
TARGET_IDS = {name: cid for cid, name in CLASS_NAMES.items()}


def parse_classes(text: str | None) -> dict[int, int] | None:
    """'0,2' or '0=person,2=face' -> model class -> class_id kept (None = keep all, ids as-is)."""
    if not text:
        return None
    mapping: dict[int, int] = {}
    for item in text.split(","):
        key, _, label = item.strip().partition("=")
        try:
            model_id = int(key)
        except ValueError:
            raise OptionError(
                f"bad --classes entry {item!r}; use ids like 0,2 or 0=person,2=face"
            ) from None
        if label and label not in TARGET_IDS:
            raise OptionError(f"bad --classes label {label!r}; use one of: {', '.join(TARGET_IDS)}")
        mapping[model_id] = TARGET_IDS[label] if label else model_id
    return mapping


def letterbox(frame: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping the aspect ratio, pad with grey; returns the image, scale and padding."""
    h, w = frame.shape[:2]
    scale = min(height / h, width / w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (height - rh) // 2, (width - rw) // 2
    out = np.full((height, width, 3), PAD_VALUE, np.uint8)
    out[top : top + rh, left : left + rw] = cv2.resize(
        frame, (rw, rh), interpolation=cv2.INTER_LINEAR
    )
    return out, scale, float(left), float(top)


def decode(output: np.ndarray, threshold: float, classes: dict[int, int] | None) -> Detections:
    """One image's [4 + nc, N] output -> boxes in input pixels, NMS within each class."""
    if output.ndim != 2 or output.shape[0] < 5:
        raise DetectorError(f"model output {output.shape} is not the YOLO layout [4 + classes, N]")
    boxes_cxcywh, class_scores = output[:4].T, output[4:].T
    cls = class_scores.argmax(axis=1)
    score = class_scores[np.arange(len(cls)), cls]
    keep = score >= threshold
    if classes is not None:
        keep &= np.isin(cls, list(classes))
    b, cls, score = boxes_cxcywh[keep], cls[keep], score[keep]
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    kept = [
        idx[nms(xyxy[idx], score[idx], NMS_IOU)]
        for c in np.unique(cls)
        for idx in [np.nonzero(cls == c)[0]]
    ]
    order = np.concatenate(kept) if kept else np.zeros(0, int)
    ids = np.array([classes[int(c)] if classes else int(c) for c in cls[order]], np.int32)
    return Detections(xyxy[order], score=score[order], class_id=ids)


class YoloOnnx:
    """A user-supplied YOLO ONNX model, run by the runtime layer (runtime.py)."""

    def __init__(self, options: DetectorOptions, path: str | Path) -> None:
        from .runtime import load_engine

        self.options = options
        self.classes = parse_classes(options.classes)
        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"model file not found: {path}")
        self.engine = load_engine(path, options, name=f"ONNX model {path}")
        dims = self.engine.input_shape
        if len(dims) != 4:
            raise DetectorError(f"{path.name}: input {dims} is not [1, 3, H, W]")
        self.height = dims[2] or DEFAULT_INPUT
        self.width = dims[3] or DEFAULT_INPUT

    def detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        image, scale, left, top = letterbox(frame, self.height, self.width)
        blob = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], np.float32) / 255.0
        output = np.asarray(self.engine.run(blob)[0])
        dets = decode(output.reshape(output.shape[-2:]), self.options.threshold, self.classes)
        shift = np.array([left, top, left, top], np.float32)
        return dets.with_(xyxy=(dets.xyxy - shift) / scale).clipped(w, h)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]


def from_spec(options: DetectorOptions) -> YoloOnnx:
    """Factory for names of the form 'onnx:PATH'."""
    return YoloOnnx(options, options.name.split(":", 1)[1])
