"""Detector backends, the registry that builds one from `DetectorOptions`, and the shared cache.

Backends are imported lazily so that optional extras (mediapipe, GPU runtimes)
cost nothing unless asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib import import_module

from .base import FACE_DETECTORS, PERSON_BACKENDS, REGISTRY, TARGETS, Detector, DetectorOptions

# Settings whose detectors stay loaded in one process; a server asked for many keeps the newest.
CACHE_SIZE = 8
_cache: OrderedDict[DetectorOptions, Detector] = OrderedDict()
_cache_lock = threading.Lock()


def available() -> list[str]:
    return sorted(REGISTRY)


def create_detector(options: DetectorOptions = DetectorOptions()) -> Detector:
    """A new detector for the options' targets: one backend, or a Composite of several."""
    if options.targets == ("face",):
        return _build(options.name, options)
    from .composite import Composite

    names = {"face": options.name, "person": options.person, "text": "text"}
    return Composite({t: _build(names[t], options) for t in dict.fromkeys(options.targets)})


def detector_for(options: DetectorOptions = DetectorOptions()) -> Detector:
    """The detector for these options, loaded once per process and shared.

    Every front end asks here (the web app and its workers, batch workers, the
    pipeline, live), so a model loads once however many jobs and threads use it:
    equal options give the same object, different ones another. The options are
    the ones the detector runs with, so a threshold lowered for a tracker
    (tracking.detector_options) is part of the key. Loading holds a lock, so
    threads asking at once for the same settings load the model once.
    """
    with _cache_lock:
        detector = _cache.get(options)
        if detector is None:
            detector = create_detector(options)
            _cache[options] = detector
            if len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(options)
    return detector


def _build(name: str, options: DetectorOptions) -> Detector:
    """One backend from the registry (names are checked by DetectorOptions)."""
    module_name, attr = REGISTRY["onnx" if name.startswith("onnx:") else name].split(":")
    factory: Callable[[DetectorOptions], Detector] = getattr(import_module(module_name), attr)
    return factory(options)


__all__ = [
    "Detector",
    "DetectorOptions",
    "create_detector",
    "detector_for",
    "available",
    "REGISTRY",
    "TARGETS",
    "PERSON_BACKENDS",
    "FACE_DETECTORS",
]
