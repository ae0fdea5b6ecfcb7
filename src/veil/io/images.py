"""Still images in and out through Pillow.

Pillow rather than OpenCV so that the EXIF orientation is applied before
detection (a phone photo stored sideways would otherwise be analysed sideways)
and so that, on request, the EXIF block can be carried over. By default no
EXIF, GPS, XMP or comment survives: the output is written from pixels alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError
from .paths import atomic_output

Image.MAX_IMAGE_PIXELS = 400_000_000  # large panoramas are real inputs; decompression bombs are not

SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


@dataclass
class LoadedImage:
    """Pixels (BGR) plus what is needed to write a faithful copy."""

    image: np.ndarray
    exif: bytes | None
    icc_profile: bytes | None


def read_image(path: Path) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                exif = im.getexif()
                icc = im.info.get("icc_profile")
                rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: not a readable image") from None
    except OSError as exc:
        raise InputError(f"{path}: damaged or truncated image ({exc})") from None
    except SyntaxError as exc:  # Pillow's parser errors for malformed headers
        raise InputError(f"{path}: damaged image ({exc})") from None
    return LoadedImage(
        np.ascontiguousarray(rgb[:, :, ::-1]), exif.tobytes() if len(exif) else None, icc
    )


def decode_image_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """BGR pixels from encoded bytes (web uploads, object storage)."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise InputError(f"{name}: not a readable image") from None


def write_image(
    image: np.ndarray,
    target: Path,
    *,
    keep_metadata: bool = False,
    source: LoadedImage | None = None,
    quality: int = 95,
) -> Path:
    """Write BGR pixels atomically; metadata only when asked for."""
    fmt = SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise OutputError(f"{target}: cannot write images with extension '{target.suffix}'")
    pil = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    params: dict = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    if source is not None and source.icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        params["icc_profile"] = source.icc_profile
    if keep_metadata and source is not None and source.exif:
        params["exif"] = source.exif
    with atomic_output(target) as tmp:
        try:
            pil.save(tmp, format=fmt, **params)
        except OSError as exc:
            raise OutputError(f"{target}: cannot write ({exc})") from None
    return target
