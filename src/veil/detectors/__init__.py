"""Detector backends and the registry that builds one from `DetectorOptions`.

Backends are imported lazily so that optional extras (mediapipe, GPU runtimes)
cost nothing unless asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from ..errors import OptionError
from .base import Detector, DetectorOptions

# name -> "module:factory"; each factory takes DetectorOptions.
REGISTRY: dict[str, str] = {
    "centerface": "veil.detectors.presets:create",
}


def available() -> list[str]:
    return sorted(REGISTRY)


def create_detector(options: DetectorOptions = DetectorOptions()) -> Detector:
    """Build the detector named in the options (one-line error for unknown names)."""
    target = REGISTRY.get(options.name)
    if target is None:
        raise OptionError(f"unknown detector '{options.name}'; choose one of: {', '.join(available())}")
    module_name, attr = target.split(":")
    factory: Callable[[DetectorOptions], Detector] = getattr(import_module(module_name), attr)
    return factory(options)


__all__ = ["Detector", "DetectorOptions", "create_detector", "available", "REGISTRY"]
