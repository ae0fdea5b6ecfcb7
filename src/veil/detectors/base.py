"""What every detector backend provides.

A detector takes a batch of BGR frames and returns one `Detections` per frame,
in frame pixels. Batching is part of the contract because inference engines
amortise per-call overhead across frames of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..detections import Detections


@dataclass(frozen=True)
class DetectorOptions:
    """How to detect; shared by the CLI, the Python API, the web app and batch.

    threshold: minimum score kept. max_size: cap on the longer side of the
    detector input in pixels (None = native resolution, best for small faces).
    quality: preset name (fast, balanced, max) chosen by the detector backend.
    device: "cpu", "cuda" or "auto". threads: inference threads (0 = all cores).
    precision: "auto" (float16 on a GPU, float32 on a CPU), "fp32" or "fp16".
    targets: what to find (face, person, text); name picks the face backend,
    or "onnx:PATH" for the user's own YOLO model whose kept classes are `classes`
    ("0,2" or "0=person,2=face"). person: "hog" or "selfie" (MediaPipe outline).
    full_every: in videos, a full-resolution pass every this many frames and a
    coarse pass plus full-resolution crops around small faces between (1 = full
    resolution on every frame); see detectors/scan.py for why this finds what a
    full pass on every frame finds at a third of the cost.
    """

    name: str = "centerface"
    threshold: float = 0.2
    max_size: int | None = None
    quality: str = "balanced"
    device: str = "cpu"
    precision: str = "auto"
    threads: int = 0
    targets: tuple[str, ...] = ("face",)
    person: str = "hog"
    classes: str | None = None
    full_every: int = 8


@runtime_checkable
class Detector(Protocol):
    """Frames in (BGR uint8 HxWx3), one `Detections` per frame out."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...
