"""Still images in and out through Pillow.

Pillow rather than OpenCV so that the EXIF orientation is applied before
detection (a phone photo stored sideways would otherwise be analysed sideways),
so that every page of a multi-page TIFF and every frame of an animated WebP or
PNG can be read and written, and so that, on request, the EXIF block can be
carried over.

What is kept of an input, and why (docs: README "What it guarantees"):
- pixels, upright: the EXIF orientation is applied to them;
- colour: a custom ICC profile is applied to the pixels (converted to sRGB) and
  replaced by a generic sRGB profile, since a profile's description and
  copyright texts can name a camera, a studio or a person;
- transparency (PNG, WebP and TIFF outputs), and for animations each frame's
  duration and the loop count;
- nothing else: EXIF, GPS, XMP, IPTC, comments and text chunks are not
  written. --keep-metadata keeps the EXIF block (without its thumbnail, a
  small un-anonymized copy of the photo, and without the maker notes, which
  can hold another) and the original ICC profile.

Memory: the file's size is checked against a pixel limit before anything is
decoded, the picture is decoded once, and its pixels are moved to and from
NumPy in strips, so an image costs about one Pillow copy plus one BGR array.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from ..errors import InputError, OptionError
from .paths import IMAGE_FORMATS, Slot, reserve, write_error

log = logging.getLogger("veil")

# veil checks every image against its own limit (max_pixels) before decoding; Pillow's global
# bomb check would refuse large panoramas a user allowed, whatever they asked for.
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_PIXELS = 100_000_000
MULTI_FRAME_FORMATS = {"TIFF", "WEBP", "PNG"}
STRIP_BYTES = 1 << 24  # pixels move between Pillow and NumPy 16 MiB at a time
# EXIF tags dropped even with --keep-metadata: pixels are upright now, and a maker note can
# embed a preview of the un-anonymized photo.
ORIENTATION, EXIF_IFD, MAKER_NOTE = 0x0112, 0x8769, 0x927C


@dataclass
class Picture:
    """One picture (a page or an animation frame): BGR pixels, transparency, display time."""

    image: np.ndarray
    alpha: np.ndarray | None = None
    duration: float | None = None  # milliseconds, for animation frames


class ImageSource:
    """An image file opened for reading: its size is checked before anything is decoded.

    `pictures()` decodes the pages or frames one at a time. The pixel limit
    counts every picture, since all of them are held when a multi-picture file
    is written back.
    """

    def __init__(
        self,
        file: Path | BinaryIO,
        *,
        name: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        keep_metadata: bool = False,
    ) -> None:
        self.name = name or str(file)
        self.max_pixels = max_pixels
        with _reading(self.name):
            self._im = Image.open(file)
        im = self._im
        self.format = im.format or ""
        self.frames = getattr(im, "n_frames", 1) if self.format in MULTI_FRAME_FORMATS else 1
        if self.format == "MPO" and im.n_frames > 1:
            log.warning(
                "veil: warning: %s: kept the main picture; its %d other MPO picture(s) "
                "(previews, second views or depth maps) are not written",
                self.name,
                im.n_frames - 1,
            )
        width, height = im.size
        pages = f" x {self.frames} pictures" if self.frames > 1 else ""
        self._check_limit(width * height * self.frames, f"{width}x{height}{pages} pixels")
        self.loop = self.duration = None
        if self.frames > 1:  # some formats (WebP) tell a frame's duration only once it is loaded
            with _reading(self.name):
                im.load()
            self.loop, self.duration = im.info.get("loop"), im.info.get("duration")
        self.exif = _kept_exif(im) if keep_metadata else None
        source_icc = im.info.get("icc_profile") or None
        self.icc_profile = source_icc if keep_metadata else (generic_srgb() if source_icc else None)
        self._to_srgb = None if keep_metadata else source_icc

    def _check_limit(self, pixels: int, what: str) -> None:
        if pixels > self.max_pixels:
            self.close()
            raise InputError(
                f"{self.name}: {what} ({pixels / 1e6:.0f} MP) is over the limit of "
                f"{self.max_pixels / 1e6:g} MP (max_pixels); raise it if the memory allows"
            )

    def pictures(self) -> Iterator[Picture]:
        """Every page or frame in order, decoded one at a time."""
        total = 0
        for index in range(self.frames):
            with _reading(self.name):
                if index:
                    self._im.seek(index)
                width, height = self._im.size  # pages of a TIFF may differ in size
                total += width * height
                self._check_limit(total, f"pictures 1 to {index + 1}")
                self._im.load()
                orientation = self._im.getexif().get(ORIENTATION, 1)
                duration = self._im.info.get("duration") if self.frames > 1 else None
                image, alpha = _pixels(self._im, self._to_srgb, self.name)
            if index == self.frames - 1:
                # Pillow's decoded copy is not needed once the pixels are taken; freeing it
                # before the picture is detected and encoded saves 4 bytes a pixel at the peak
                # (a 95 MP photo: 1449 -> about 1090 MiB peak, tests/test_cli.py).
                self._im.close()
            yield Picture(_upright(image, orientation), _upright(alpha, orientation), duration)

    def close(self) -> None:
        self._im.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Pillow's many ways of failing on a bad file, as one-line InputErrors."""
    try:
        yield
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a readable image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise InputError(f"{name}: damaged or truncated image ({reason})") from None


def read_image(
    path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_metadata: bool = False
) -> Picture:
    """The (first) picture of an image file: BGR pixels, upright, in sRGB."""
    with ImageSource(path, max_pixels=max_pixels, keep_metadata=keep_metadata) as source:
        return next(source.pictures())


def decode_image_bytes(
    data: bytes, name: str = "upload", *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """BGR pixels from encoded bytes (web uploads, camera frames, object storage)."""
    with ImageSource(io.BytesIO(data), name=name, max_pixels=max_pixels) as source:
        return next(source.pictures()).image


def write_image(
    image: np.ndarray,
    target: Path,
    *,
    alpha: np.ndarray | None = None,
    source: ImageSource | None = None,
    quality: int = 95,
    overwrite: bool = True,
) -> Path:
    """Write BGR pixels atomically; returns the path written (a free name unless overwrite)."""
    with reserve(target, overwrite=overwrite) as slot:
        save_pictures([Picture(image, alpha)], slot, source=source, quality=quality)
    return slot.target


def save_pictures(
    pictures: Iterable[Picture],
    slot: Slot,
    *,
    source: ImageSource | None = None,
    quality: int = 95,
) -> None:
    """Encode one or more pictures (pages, frames) into a reserved output.

    The format follows the target's extension; metadata is only what `source`
    keeps. Pictures become Pillow images as they come (a generator of
    anonymized frames is never held twice), and a format that holds one
    picture is refused before the first is taken when the source has more.
    """
    target = slot.target
    fmt = IMAGE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise OptionError(f"{target}: cannot write images with extension '{target.suffix}'")
    _check_holds(fmt, source.frames if source is not None else 1, target)
    keep_alpha = fmt in MULTI_FRAME_FORMATS
    frames, durations = [], []
    for picture in pictures:
        frames.append(_pil(picture, keep_alpha))
        durations.append(picture.duration)
    _check_holds(fmt, len(frames), target)
    params: dict = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if source is not None and source.icc_profile and fmt != "BMP":
        params["icc_profile"] = source.icc_profile
    if source is not None and source.exif:
        params["exif"] = source.exif
    if len(frames) > 1:
        params.update(save_all=True, append_images=frames[1:])
        if None not in durations:
            loop = source.loop if source is not None else None
            params.update(duration=durations, loop=0 if loop is None else loop)
    try:
        frames[0].save(slot.tmp, format=fmt, **params)
    except OSError as exc:
        raise write_error(target, exc) from None


def _check_holds(fmt: str, pictures: int, target: Path) -> None:
    if pictures > 1 and fmt not in MULTI_FRAME_FORMATS:
        raise OptionError(
            f"{target}: {fmt} holds one picture and the input has {pictures}; "
            "write to .tif, .png or .webp to keep them all"
        )


def _pixels(im: Image.Image, icc: bytes | None, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """BGR uint8 pixels in sRGB, and the alpha channel if there is one, of a loaded picture.

    High bit depths are scaled to 8 bits (never clipped), palettes expanded,
    CMYK and custom profiles converted.
    """
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        im = Image.fromarray(_to_uint8(np.asarray(im)))
    elif mode not in ("L", "RGB", "RGBA", "CMYK"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    if icc is not None:
        im = _converted_to_srgb(im, icc, name)
    if im.mode == "CMYK":
        im = im.convert("RGB")
    alpha = _strips(im, "A", 1) if im.mode == "RGBA" else None
    if im.mode == "L":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR), None
    return _strips(im, "BGR", 3), alpha


def _strips(im: Image.Image, rawmode: str, channels: int) -> np.ndarray:
    """One raw layout of a Pillow image as an array, copied a strip at a time (no full copy)."""
    width, height = im.size
    out = np.empty((height, width, channels), np.uint8)
    rows = max(1, STRIP_BYTES // max(1, width * 4))
    for y in range(0, height, rows):
        strip = im.crop((0, y, width, min(height, y + rows)))
        out[y : y + strip.height] = np.frombuffer(strip.tobytes("raw", rawmode), np.uint8).reshape(
            strip.height, width, channels
        )
    return out[:, :, 0] if channels == 1 else out


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Greyscale of a higher bit depth as 8 bits: 16-bit by its top byte, other ranges stretched.

    Pillow opens 16-bit files as I;16 (or as 32-bit I); float images are taken
    as 0..1 when they lie within it.
    """
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return (values >> 8).astype(np.uint8)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0 and hi <= 255 and values.dtype.kind != "f":
        return values.astype(np.uint8)
    if lo >= 0 and hi <= 65535 and values.dtype.kind != "f":
        return (values >> 8).astype(np.uint8)
    if values.dtype.kind == "f" and lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((values.astype(np.float32) - lo) * scale + 0.5, 0, 255).astype(np.uint8)


_SPACES = {"L": "GRAY", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def generic_srgb() -> bytes:
    """A generic sRGB profile (littleCMS's own: no camera, studio or person named in it)."""
    return _srgb_profile().tobytes()


def _converted_to_srgb(im: Image.Image, icc: bytes, name: str) -> Image.Image:
    """The picture's colours converted from its own profile to sRGB (alpha kept)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        if space != _SPACES[im.mode]:
            raise ImageCms.PyCMSError(f"a {space} profile on a {im.mode} picture")
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        transform = ImageCms.buildTransform(profile, _srgb_profile(), im.mode, out_mode)
        if im.mode == out_mode:
            ImageCms.applyTransform(im, transform, inPlace=True)
            return im
        return ImageCms.applyTransform(im, transform)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.warning(
            "veil: warning: %s: colour profile not applied (%s); colours are read as sRGB",
            name,
            " ".join(str(exc).split())[:80],
        )
        return im


def _upright(pixels: np.ndarray | None, orientation: int) -> np.ndarray | None:
    """Pixels turned as the EXIF orientation says (what ImageOps.exif_transpose does, on arrays)."""
    if pixels is None or orientation not in range(2, 9):
        return pixels
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }[orientation](pixels)
    return np.ascontiguousarray(turned)


def _kept_exif(im: Image.Image) -> bytes | None:
    """The EXIF block for --keep-metadata, less orientation (applied), maker notes, thumbnail.

    Pillow writes IFD0 with its Exif, GPS and Interop folders; the thumbnail
    (IFD1) is never among them.
    """
    exif = im.getexif()
    if not len(exif):
        return None
    exif.pop(ORIENTATION, None)
    exif.get_ifd(EXIF_IFD).pop(MAKER_NOTE, None)
    return exif.tobytes()


def _pil(picture: Picture, keep_alpha: bool) -> Image.Image:
    """A Pillow image of BGR pixels (and alpha), converted without an intermediate copy."""
    height, width = picture.image.shape[:2]
    im = Image.frombytes("RGB", (width, height), np.ascontiguousarray(picture.image), "raw", "BGR")
    if keep_alpha and picture.alpha is not None:
        im.putalpha(Image.frombytes("L", (width, height), np.ascontiguousarray(picture.alpha)))
    return im
