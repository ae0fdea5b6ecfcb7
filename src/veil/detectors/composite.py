"""Several detectors, one per target, merged into one `Detections` per frame.

Each target keeps its own class_id (face 0, person 1, text 2), so later stages
(filters, labels, export) can tell them apart; hiding treats them all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from .base import Detector


class Composite:
    """Runs every detector on the same batch; a failure in any one fails the batch (fail closed)."""

    def __init__(self, detectors: dict[str, Detector]) -> None:
        self.detectors = detectors

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        per_target = [detector.detect(frames) for detector in self.detectors.values()]
        return [Detections.merge([dets[i] for dets in per_target]) for i in range(len(frames))]
