"""What every detector backend provides.

A detector takes a batch of BGR frames and returns one `Detections` per frame,
in frame pixels. Batching is part of the contract because inference engines
amortise per-call overhead across frames of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..detections import Detections


@dataclass(frozen=True)
class DetectorOptions:
    """How to detect; shared by the CLI, the Python API, the web app and batch.

    threshold: minimum score kept. max_size: cap on the longer side of the
    detector input in pixels (None = native resolution, best for small faces).
    quality: preset name (fast, balanced, max) chosen by the detector backend.
    device: "cpu", "cuda" or "auto". threads: inference threads (0 = all cores).
    full_every: in videos, a full-resolution pass every this many frames and a
    coarse pass plus full-resolution crops around small faces between (1 = full
    resolution on every frame); see detectors/scan.py.
    """

    name: str = "centerface"
    threshold: float = 0.2
    max_size: int | None = None
    quality: str = "balanced"
    device: str = "cpu"
    threads: int = 0
    full_every: int = 1


@runtime_checkable
class Detector(Protocol):
    """Frames in (BGR uint8 HxWx3), one `Detections` per frame out."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        ...
