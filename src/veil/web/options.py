"""The few choices the page offers, checked and turned into the pipeline's JobOptions.

The web app exposes only settings that cannot weaken anonymization by mistake:
no 'none' method and no overlay path from the client (a path would reach the
server's file system).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import OptionError
from ..hide import SHAPES, AnonymizeOptions
from ..pipeline import JobOptions

METHODS = ("blur", "pixelate", "fill")
TARGETS = ("face",)
MASK_SCALE_RANGE = (1.0, 3.0)
# Never weaker than the re-identification-safe defaults allow by much: the blur sigma as a
# fraction of face size, and the pixelate cells across the face (fewer cells hide more).
STRENGTH_RANGE = {"blur": (0.2, 1.0), "pixelate": (2.0, 8.0)}


def check_options(
    method: str = "blur",
    shape: str = "ellipse",
    strength: float | None = None,
    mask_scale: float = AnonymizeOptions.mask_scale,
    targets: str = "face",
) -> dict[str, Any]:
    """Validated, JSON-ready options for one job; raises OptionError with a one-line reason."""
    if method not in METHODS:
        raise OptionError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if shape not in SHAPES:
        raise OptionError(f"unknown shape '{shape}'; choose one of: {', '.join(SHAPES)}")
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TARGETS]
    if not wanted or unknown:
        raise OptionError(
            f"unknown target '{(unknown or [''])[0]}'; choose from: {', '.join(TARGETS)}"
        )
    low, high = MASK_SCALE_RANGE
    if not low <= mask_scale <= high:
        raise OptionError(f"mask_scale must be between {low} and {high}")
    if strength is not None:
        if method not in STRENGTH_RANGE:
            strength = None
        else:
            low, high = STRENGTH_RANGE[method]
            if not low <= strength <= high:
                raise OptionError(f"strength for {method} must be between {low} and {high}")
    return {
        "method": method,
        "shape": shape,
        "strength": strength,
        "mask_scale": mask_scale,
        "targets": wanted,
    }


def job_options(options: dict[str, Any], kind: str, base: JobOptions = JobOptions()) -> JobOptions:
    """JobOptions for one stored job; videos ask for a review report so flagged frames can be shown."""
    anonymize = dataclasses.replace(
        base.anonymize,
        method=options["method"],
        shape=options["shape"],
        strength=options["strength"],
        mask_scale=options["mask_scale"],
    )
    return dataclasses.replace(
        base, anonymize=anonymize, overwrite=True, export_format=None, review=kind == "video"
    )
