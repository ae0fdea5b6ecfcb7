"""Detector backends and the registry that builds one from `DetectorOptions`.

Backends are imported lazily so that optional extras (mediapipe, GPU runtimes)
cost nothing unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from ..errors import OptionError
from .base import Detector, DetectorOptions

# name -> "module:factory"; each factory takes DetectorOptions.
REGISTRY: dict[str, str] = {
    "centerface": "veil.detectors.presets:create",
    "hog": "veil.detectors.hog_people:HogPeople",
    "selfie": "veil.detectors.selfie_segmentation:SelfieSegmentation",
    "text": "veil.detectors.ppocr_text:PpocrText",
    "onnx": "veil.detectors.onnx_models:from_spec",
    "blazeface": "veil.detectors.blazeface:BlazeFace",
    "blazeface-fast": "veil.detectors.blazeface:BlazeFaceFast",
}
TARGETS = ("face", "person", "text")
PERSON_BACKENDS = ("hog", "selfie")
# What `--detector` (DetectorOptions.name) accepts, besides onnx:PATH; the
# other backends find other targets and are chosen through `targets`.
FACE_DETECTORS = ("centerface", "blazeface", "blazeface-fast")


def available() -> list[str]:
    return sorted(REGISTRY)


def check_face_detector(name: str) -> None:
    """`name` must find faces: a person or text backend in the face slot would leave faces
    visible. One-line OptionError otherwise, saying how to ask for that target instead."""
    if name in FACE_DETECTORS or (name.startswith("onnx:") and name[5:]):
        return
    others = {**dict.fromkeys(PERSON_BACKENDS, "person"), "text": "text"}
    if name in others:
        target = others[name]
        how = f"--targets face,{target}" + (f" --person {name}" if target == "person" else "")
        raise OptionError(f"'{name}' is not a face detector (it finds {target}s); use {how}")
    raise OptionError(
        f"unknown detector '{name}'; choose a face detector: {', '.join(FACE_DETECTORS)}, onnx:PATH"
    )


def create_detector(options: DetectorOptions = DetectorOptions()) -> Detector:
    """The detector for the options' targets: one backend, or a Composite of several.

    Every front end comes through here, so the face slot is checked here.
    """
    check_face_detector(options.name)
    unknown = [t for t in options.targets if t not in TARGETS]
    if unknown or not options.targets:
        raise OptionError(
            f"unknown target '{','.join(unknown)}'; choose from: {', '.join(TARGETS)}"
        )
    if options.person not in PERSON_BACKENDS:
        choices = ", ".join(PERSON_BACKENDS)
        raise OptionError(f"unknown person detector '{options.person}'; choose one of: {choices}")
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
    "FACE_DETECTORS",
    "check_face_detector",
]
