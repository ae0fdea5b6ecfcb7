"""Whole people with OpenCV's HOG + linear SVM pedestrian detector.

The model ships inside opencv-python 4.x (OpenCV 5 dropped it), so it needs no
extra and no download. It finds upright people about 100 px tall or more;
sitting, crouching or heavily occluded people are its blind spot.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..boxes import nms, xywh_to_xyxy
from ..detections import PERSON, Detections
from .base import Detector, DetectorOptions

WINDOW_HEIGHT = 128
NMS_IOU = 0.4
# The smallest person the 64x128 window sees is 128 px tall; frames are upscaled
# so that people down to this height are found too.
MIN_PERSON_HEIGHT = 96


def margin_to_score(weight: np.ndarray) -> np.ndarray:
    """SVM margins (0 at the decision boundary, ~3 for clear people) -> 0..1."""
    weight = np.clip(np.asarray(weight, np.float32), 0, None)
    return weight / (1.0 + weight)


class HogPeople(Detector):
    """cv2.HOGDescriptor default people detector on every frame."""

    backend = "opencv"

    def __init__(self, options: DetectorOptions = DetectorOptions()) -> None:
        self.options = options
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        scale = WINDOW_HEIGHT / MIN_PERSON_HEIGHT
        if self.options.max_size and max(h, w) * scale > self.options.max_size:
            scale = self.options.max_size / max(h, w)
        image = (
            frame
            if scale == 1.0
            else cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        )
        rects, weights = self.hog.detectMultiScale(
            image, winStride=(8, 8), padding=(8, 8), scale=1.05
        )
        if len(rects) == 0:
            return Detections(np.zeros((0, 4)), class_id=np.zeros(0))
        boxes = xywh_to_xyxy(np.asarray(rects, np.float32)) / scale
        score = margin_to_score(np.asarray(weights).reshape(-1))
        keep = nms(boxes, score, NMS_IOU)
        return Detections(
            boxes[keep], score=score[keep], class_id=np.full(len(keep), PERSON)
        ).clipped(w, h)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]
