"""People as body outlines with MediaPipe's selfie segmentation (extra: mediapipe).

The model (bundled in the mediapipe wheel) marks every pixel that belongs to a
person. Each connected region becomes one person detection whose mask is the
outline, so hiding follows the body instead of a rectangle. It is made for
people close to the camera (video calls, interviews); small distant people
are often missed, where the HOG detector does better.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from ..detections import PERSON, Detections
from ..errors import DetectorError
from .base import Detector, DetectorOptions

PIXEL_THRESHOLD = 0.5
# Regions smaller than this share of the frame are speckle, not people.
MIN_AREA_FRACTION = 0.002


def components(probability: np.ndarray, threshold: float = PIXEL_THRESHOLD) -> Detections:
    """One detection per connected region of a person-probability map (frame-sized)."""
    binary = (probability > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    h, w = probability.shape
    keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= MIN_AREA_FRACTION * h * w]
    if not keep:
        return Detections(np.zeros((0, 4)), class_id=np.zeros(0), mask=np.zeros((0, h, w), bool))
    boxes = [
        [stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]]
        for i in keep
    ]
    masks = np.stack([labels == i for i in keep])
    scores = [float(probability[m].mean()) for m in masks]
    return Detections(
        np.asarray(boxes), score=scores, class_id=np.full(len(keep), PERSON), mask=masks
    )


class SelfieSegmentation(Detector):
    """MediaPipe selfie segmentation: the general (square) model, or landscape for wide frames."""

    backend = "mediapipe"

    def __init__(self, options: DetectorOptions = DetectorOptions()) -> None:
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except ImportError as exc:
            raise DetectorError(
                "--person selfie needs MediaPipe: pip install 'veil[mediapipe]'"
            ) from exc
        self.options = options
        self._module = selfie_segmentation
        self._models: dict[int, object] = {}
        self._lock = threading.Lock()  # a MediaPipe graph runs one image at a time

    def _model(self, landscape: bool):
        key = 1 if landscape else 0
        if key not in self._models:
            self._models[key] = self._module.SelfieSegmentation(model_selection=key)
        return self._models[key]

    def detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        with self._lock:
            result = self._model(w >= 1.5 * h).process(rgb)
        if result.segmentation_mask is None:
            return components(np.zeros((h, w), np.float32))
        return components(np.asarray(result.segmentation_mask, np.float32))

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()
