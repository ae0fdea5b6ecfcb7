"""How to hide: functions from a face crop to its replacement.

Every method's strength scales with the face size, so a 20-pixel face and a
400-pixel face are hidden equally well. Blur and pixelate both go through a
downsample first: the output then holds only a handful of values per face,
which no deconvolution can turn back into a recognisable face.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

METHODS = ("blur", "pixelate", "fill", "image", "none")

# Defaults, as fractions of the face size (the geometric mean of box width and height).
# Measured against dlib's face-recognition embedder (see README "Privacy strength").
DEFAULT_BLUR_STRENGTH = 0.25  # Gaussian sigma = 0.25 x face size
DEFAULT_PIXEL_CELLS = 6  # cells across the face


def face_size(box_w: float, box_h: float) -> float:
    return float(np.sqrt(max(box_w, 1.0) * max(box_h, 1.0)))


def blur(crop: np.ndarray, size: float, strength: float = DEFAULT_BLUR_STRENGTH) -> np.ndarray:
    """Gaussian blur with sigma = strength x face size, computed through a downsample.

    Blurring a small copy is both fast for big faces and irreversible: averaging blocks of
    at least a third of sigma (a whole number of pixels, so three pixels or fewer per sigma
    remain) discards the detail that a Wiener or blind deconvolution would need. Whole
    blocks, because OpenCV averages them on its fast path: with a fractional factor, hiding
    three faces took 4.2-4.5 CPU ms a 1080p frame, with whole blocks 2.9
    (`benchmarks/stages.py --frames 48`, two runs each).
    """
    h, w = crop.shape[:2]
    sigma = max(1.0, strength * size)
    factor = max(1, math.ceil(sigma / 3.0 - 1e-9))
    small = crop
    if factor > 1:
        ph, pw = -(-h // factor) * factor, -(-w // factor) * factor
        if (ph, pw) != (h, w):  # whole blocks: the edge mirrored into the last ones
            small = cv2.copyMakeBorder(crop, 0, ph - h, 0, pw - w, cv2.BORDER_REFLECT)
        small = cv2.resize(small, (pw // factor, ph // factor), interpolation=cv2.INTER_AREA)
    # Rounded so that at most 200 kernels serve every face size (sigma / factor lies in 1-3).
    kernel = _gaussian_kernel(round(sigma / factor, 2))
    small = cv2.sepFilter2D(small, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    if factor == 1:
        return small
    grown = cv2.resize(small, (small.shape[1] * factor, small.shape[0] * factor))
    return np.ascontiguousarray(grown[:h, :w])


@lru_cache(maxsize=256)
def _gaussian_kernel(sigma: float) -> np.ndarray:
    """The Gaussian cv2.GaussianBlur uses on 8-bit images (cut at 3 sigma), made once per
    sigma: GaussianBlur derives its exact fixed-point kernel on every call, which took two
    thirds of the blur of a face's small copy (sigma 1 to 3, see blur) and made
    hiding a 565-face crowd frame cost 40 ms more."""
    return cv2.getGaussianKernel(round(sigma * 6 + 1) | 1, sigma)


def pixelate(crop: np.ndarray, size: float, cells: float = DEFAULT_PIXEL_CELLS) -> np.ndarray:
    """Mosaic of cell means, about `cells` cells across the face."""
    h, w = crop.shape[:2]
    cell = max(2.0, size / max(cells, 1.0))
    sw, sh = max(1, int(round(w / cell))), max(1, int(round(h / cell)))
    small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def fill(crop: np.ndarray, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    out = np.empty_like(crop)
    out[:] = color
    return out


@lru_cache(maxsize=8)
def load_overlay(path: str) -> np.ndarray:
    """BGRA overlay image; images without alpha are fully opaque."""
    data = np.fromfile(path, np.uint8) if Path(path).is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise InputError(f"cannot read overlay image: {path}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    return img


def overlay(crop: np.ndarray, size: float, image: np.ndarray) -> np.ndarray:
    """The overlay resized to the crop; see-through parts show a blurred face, never the face."""
    h, w = crop.shape[:2]
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    alpha = resized[:, :, 3:4].astype(np.float32) / 255.0
    under = blur(crop, size).astype(np.float32)
    return (resized[:, :, :3].astype(np.float32) * alpha + under * (1 - alpha)).astype(np.uint8)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'r,g,b' or a few names -> BGR tuple."""
    names = {
        "black": "#000000",
        "white": "#ffffff",
        "gray": "#808080",
        "grey": "#808080",
        "red": "#ff0000",
        "green": "#00ff00",
        "blue": "#0000ff",
    }
    value = names.get(text.strip().lower(), text.strip())
    try:
        if value.startswith("#") and len(value) == 7:
            r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
        else:
            r, g, b = (int(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"bad colour {text!r}; use #rrggbb, r,g,b or a name") from None
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"bad colour {text!r}; channels must be 0..255")
    return (b, g, r)
