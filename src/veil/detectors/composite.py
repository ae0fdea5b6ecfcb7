"""Several detectors, one per target, merged into one `Detections` per frame.

Each target keeps its own class_id (face 0, person 1, text 2), so later stages
(filters, labels, export) can tell them apart; hiding treats them all the same.
A target whose detector has a per-video scan keeps it inside the composite:
with `--targets face,person` the faces of a video are still found by the
keyframe scan, while the person detector runs on every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from .base import Detector, Stream


def _merged(per_target: list[list[Detections]], count: int) -> list[Detections]:
    return [Detections.merge([dets[i] for dets in per_target]) for i in range(count)]


def _joined(values: Sequence[str]) -> str:
    return "+".join(dict.fromkeys(values))


class Composite(Detector):
    """Runs every detector on the same batch; a failure in any one fails the batch (fail closed)."""

    def __init__(self, detectors: dict[str, Detector]) -> None:
        self.detectors = detectors
        parts = list(detectors.values())
        self.preferred_batch = max(d.preferred_batch for d in parts)
        self.backend = _joined([d.backend for d in parts])
        self.device = _joined([d.device for d in parts])
        self.precision = _joined([d.precision for d in parts])

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return _merged([d.detect(frames) for d in self.detectors.values()], len(frames))

    def stream(self, *, strong: float | None = None) -> CompositeStream | None:
        """Each target's own scan where it has one, plain detection for the others;
        None when no target has a scan (then the composite's `detect` is all there is)."""
        streams = [d.stream(strong=strong) for d in self.detectors.values()]
        if all(s is None for s in streams):
            return None
        return CompositeStream(
            [d if s is None else s for d, s in zip(self.detectors.values(), streams)],
            batch_size=max(s.batch_size for s in streams if s is not None),
        )


class CompositeStream:
    """One video through every target's detector or scan, merged per frame."""

    def __init__(self, parts: Sequence[Detector | Stream], *, batch_size: int) -> None:
        self.parts = list(parts)
        self.batch_size = batch_size

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return _merged([p.detect(frames) for p in self.parts], len(frames))

    def expect(self, height: int, width: int) -> None:
        for part in self.parts:
            if not isinstance(part, Detector):
                part.expect(height, width)
