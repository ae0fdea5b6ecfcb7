"""Detector backends and the registry that builds one from `DetectorOptions`.

Backends are imported lazily so that optional extras (mediapipe, GPU runtimes)
cost nothing unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..errors import OptionError
from .base import PERSON_BACKENDS, TARGETS, Detector, DetectorOptions

# name -> "module:factory"; each factory takes DetectorOptions.
REGISTRY: dict[str, str] = {
    "centerface": "veil.detectors.presets:create",
    "hog": "veil.detectors.hog_people:HogPeople",
    "selfie": "veil.detectors.selfie_segmentation:SelfieSegmentation",
    "text": "veil.detectors.ppocr_text:PpocrText",
    "onnx": "veil.detectors.yolo_onnx:from_spec",
    "blazeface": "veil.detectors.blazeface:BlazeFace",
    "blazeface-fast": "veil.detectors.blazeface:BlazeFaceFast",
}


def available() -> list[str]:
    return sorted(REGISTRY)


def create_detector(options: DetectorOptions = DetectorOptions()) -> Detector:
    """The detector for the options' targets: one backend, or a Composite of several."""
    if not options.targets:  # each target was checked by DetectorOptions
        raise OptionError(f"no target given; choose from: {', '.join(TARGETS)}")
    names = {"face": options.name, "person": options.person, "text": "text"}
    if tuple(options.targets) == ("face",):
        return build(options.name, options)
    from .composite import Composite

    return Composite({t: build(names[t], options) for t in dict.fromkeys(options.targets)})


def build(name: str, options: DetectorOptions) -> Detector:
    """One backend from the registry (one-line error for unknown names)."""
    target = REGISTRY.get(name.split(":", 1)[0] if name.startswith("onnx:") else name)
    if target is None or name == "onnx":
        raise OptionError(
            f"unknown detector '{name}'; choose one of: {', '.join(available())} (onnx:PATH)"
        )
    module_name, attr = target.split(":")
    factory: Callable[[DetectorOptions], Detector] = getattr(import_module(module_name), attr)
    return factory(options)


__all__ = [
    "Detector",
    "DetectorOptions",
    "create_detector",
    "build",
    "available",
    "REGISTRY",
    "TARGETS",
    "PERSON_BACKENDS",
]
