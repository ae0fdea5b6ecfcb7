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
from .runtime import check_runtime


@dataclass(frozen=True)
class DetectorOptions:
    """How to detect; shared by the CLI, the Python API, the web app and batch.

    threshold: minimum score kept. max_size: cap on the longer side of the
    detector input in pixels (None = native resolution, best for small faces).
    quality: preset name (fast, balanced, max) chosen by the detector backend.
    device: "cpu", "cuda" or "auto". threads: inference threads (0 = all cores).
    backend: the runtime of ONNX models: "auto" (OpenVINO on x86-64 CPUs, onnxruntime
    on GPUs and elsewhere, and wherever OpenVINO cannot run), "openvino" or
    "onnxruntime"; see detectors/runtime.py.
    precision: "auto" (float16 on a GPU; on OpenVINO bfloat16 where the CPU has it in
    hardware, else INT8, for veil's face detector; float32 otherwise), "fp32", "fp16",
    "bf16" or "int8" (the last two on OpenVINO).
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
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_runtime(self.backend, self.precision)


@runtime_checkable
class Detector(Protocol):
    """Frames in (BGR uint8 HxWx3), one `Detections` per frame out."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...
