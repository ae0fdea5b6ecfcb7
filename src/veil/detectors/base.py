"""The detector contract: what every backend provides and the options that choose one.

A detector takes a batch of BGR frames and returns one `Detections` per frame,
in frame pixels. Batching is part of the contract because inference engines
amortise per-call overhead across frames of the same size. `Detector` declares
everything the pipeline may call, with defaults, so a composite of several
targets or a user's own detector gets batching and the per-video keyframe scan
without the pipeline probing for optional attributes.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..detections import Detections
from ..errors import OptionError

# name -> "module:factory"; each factory takes DetectorOptions. "onnx" stands for "onnx:PATH".
REGISTRY: dict[str, str] = {
    "centerface": "veil.detectors.presets:create",
    "hog": "veil.detectors.hog_people:HogPeople",
    "selfie": "veil.detectors.selfie_segmentation:SelfieSegmentation",
    "text": "veil.detectors.ppocr_text:PpocrText",
    "onnx": "veil.detectors.yolo_onnx:from_spec",
    "blazeface": "veil.detectors.blazeface:BlazeFace",
    "blazeface-fast": "veil.detectors.blazeface:BlazeFaceFast",
}
TARGETS = ("face", "person", "text")
PERSON_BACKENDS = ("hog", "selfie")
QUALITIES = ("fast", "balanced", "max")
PRECISIONS = ("auto", "fp32", "fp16")
DEVICES = ("cpu", "cuda", "auto")


def _choose(what: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise OptionError(f"unknown {what} '{value}'; choose one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class DetectorOptions:
    """How to detect; shared by the CLI, the Python API, the web app and batch.

    threshold: minimum score kept (0..1). max_size: cap on the longer side of
    the detector input in pixels (None = native resolution, best for small faces).
    quality: preset name (fast, balanced, max) chosen by the detector backend.
    device: "cpu", "cuda" or "auto". threads: inference threads (0 = all cores).
    precision: "auto" (float16 on a GPU, float32 on a CPU), "fp32" or "fp16".
    targets: what to find (face, person, text; a comma-separated string is
    accepted too); name picks the face backend, or "onnx:PATH" for the user's
    own YOLO model whose kept classes are `classes` ("0,2" or "0=person,2=face").
    person: "hog" or "selfie" (MediaPipe outline).
    full_every: in videos, a full-resolution pass every this many frames and a
    coarse pass plus full-resolution crops around small faces between (1 = full
    resolution on every frame); see detectors/scan.py for why this finds what a
    full pass on every frame finds at a third of the cost.

    The options check themselves when made, so a wrong value is one line of
    error (OptionError) before any model loads, whichever front end made them.
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

    def __post_init__(self) -> None:
        targets = self.targets.split(",") if isinstance(self.targets, str) else self.targets
        object.__setattr__(self, "targets", tuple(str(t).strip() for t in targets))
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise OptionError(
                f"unknown target '{','.join(unknown)}'; choose from: {', '.join(TARGETS)}"
            )
        if self.name == "onnx" or (self.name not in REGISTRY and not self.name.startswith("onnx:")):
            names = ", ".join(sorted(REGISTRY))
            raise OptionError(f"unknown detector '{self.name}'; choose one of: {names} (onnx:PATH)")
        _choose("person detector", self.person, PERSON_BACKENDS)
        _choose("quality", self.quality, QUALITIES)
        _choose("precision", self.precision, PRECISIONS)
        _choose("device", self.device, DEVICES)
        self._check_numbers()

    def _check_numbers(self) -> None:
        if not (_real(self.threshold) and 0 <= self.threshold <= 1):
            raise OptionError(f"--threshold must be between 0 and 1, got {self.threshold!r}")
        if self.max_size is not None and not (_real(self.max_size) and self.max_size > 0):
            raise OptionError(
                f"--max-size must be a positive number of pixels, got {self.max_size!r}"
            )
        if not (_integer(self.full_every) and self.full_every >= 1):
            raise OptionError(
                f"--full-every must be a whole number, 1 or more, got {self.full_every!r}"
            )
        if not (_integer(self.threads) and self.threads >= 0):
            raise OptionError(
                f"--threads must be a whole number, 0 (all cores) or more, got {self.threads!r}"
            )


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Stream(Protocol):
    """Detection over the consecutive frames of one video (see scan.py); it keeps state
    between calls, so a detector makes a new one per video."""

    @property
    def batch_size(self) -> int:
        """Frames per call that suit it (the pipeline sends at least this many)."""
        ...

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...


class Detector(ABC):
    """Frames in (BGR uint8 HxWx3, one size per call), one `Detections` per frame out.

    This is everything the pipeline may call. A backend writes `detect`; the
    rest defaults to what suits a detector that looks at each frame on its own:
    no per-video scan, one frame per call, on the CPU in float32. `backend`,
    `device` and `precision` say what it actually runs with (after any fallback,
    e.g. from an unusable GPU), for logs, benchmarks and tests.

    `detect` may be called from several threads at once, because `detector_for`
    shares one detector per settings among the web workers and live sessions;
    a backend whose engine handles one image at a time guards it with a lock.
    """

    #: Frames per `detect` call that run best (a GPU amortises each call over a batch).
    preferred_batch: int = 1
    #: The runtime that runs the model: "onnxruntime", "mediapipe", "opencv", ...
    backend: str = "python"
    #: Where it runs: "cpu", or the accelerator in use ("cuda", "tensorrt", "coreml").
    device: str = "cpu"
    #: The network's arithmetic: "fp32" or "fp16".
    precision: str = "fp32"

    @abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One `Detections` per frame, in frame pixels, in the order given."""

    def stream(self) -> Stream | None:
        """A detector for the consecutive frames of one video, or None to call `detect`
        on every batch as it comes. Backends with a cheaper way through a video than
        full detection on every frame (the keyframe scan) return a fresh one per video."""
        return None
