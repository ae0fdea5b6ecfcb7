"""A decoded picture on its way through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError


@dataclass
class Frame:
    """index: position in the source; time: presentation time in seconds read from
    the container (never assumed from fps); image: BGR uint8 HxWx3."""

    index: int
    time: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR HxWx3 picture of a greyscale (HxW, HxWx1), BGR or BGRA array (BGR: itself).

    Detectors and hiding methods work on BGR; callers of the Python API hand in what
    their library gives them (a greyscale scan, a PNG with alpha) and get that back
    through `in_layout_of`.
    """
    array = np.asarray(image)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    raise InputError(
        f"expected a greyscale (HxW, HxWx1), BGR (HxWx3) or BGRA (HxWx4) picture, "
        f"got shape {array.shape}"
    )


def in_layout_of(bgr: np.ndarray, original: np.ndarray) -> np.ndarray:
    """A BGR result of `to_bgr(original)` in the original's layout (alpha taken from it)."""
    if original.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if original.shape[2] == 1:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    if original.shape[2] == 4:
        return np.concatenate([bgr, original[:, :, 3:]], axis=2)
    return bgr
