"""Uploads: streamed to disk with a size cap, typed from their content, never named by the client.

A browser's file name and MIME type are hints at best and attacks at worst, so
the stored file is named by the server (job id + an extension derived from the
first bytes) and is accepted only once it actually decodes as an image or a
video. The client's name survives only as display text, sanitized.

An upload must keep coming: one that stalls, or crawls past its time limit, is cut off
and its partial file deleted, so a slow client cannot hold a slot or disk space forever.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import InputError, VeilError

# (offset, magic bytes, extension). Order matters only where prefixes overlap.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", ".jpg"),
    (0, b"\x89PNG\r\n\x1a\n", ".png"),
    (0, b"GIF87a", ".gif"),
    (0, b"GIF89a", ".gif"),
    (0, b"BM", ".bmp"),
    (0, b"II*\x00", ".tif"),
    (0, b"MM\x00*", ".tif"),
    (0, b"\x1aE\xdf\xa3", ".mkv"),
    (0, b"\x00\x00\x01\xba", ".mpg"),
    (0, b"\x00\x00\x01\xb3", ".mpg"),
    (0, b"FLV", ".flv"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", ".wmv"),
)
IMAGE_TYPES = {".jpg", ".png", ".bmp", ".tif", ".webp"}
VIDEO_TYPES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".flv", ".wmv", ".ts", ".gif"}
SNIFF_BYTES = 512


class UploadTooLarge(InputError):
    """The upload went past the configured size limit; the partial file was removed."""


class UploadTimeout(InputError):
    """The upload stalled or took too long; the partial file was removed."""


class Busy(VeilError):
    """The server's queue, or this client's share of uploads, is full: try again later."""


def sniff_extension(head: bytes) -> str | None:
    """The file type of these first bytes as an extension, or None when unknown."""
    if len(head) >= 12 and head[:4] == b"RIFF":
        return {b"WEBP": ".webp", b"AVI ": ".avi"}.get(head[8:12])
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith((b"avif", b"heic", b"heix", b"mif1")):
            return None
        return ".mov" if brand == b"qt  " else ".mp4"
    if len(head) >= 4 * 188 and all(head[i * 188] == 0x47 for i in range(4)):
        return ".ts"
    for offset, magic, ext in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if ext == ".mkv" and b"webm" in head[:64]:
                return ".webm"
            return ext
    return None


def kind_of(extension: str) -> str:
    """'image' or 'video' for a sniffed extension (GIF is treated as a video, as the CLI does)."""
    return "image" if extension in IMAGE_TYPES else "video"


def check_decodes(path: Path, kind: str, max_pixels: int) -> None:
    """Raise InputError unless the file really opens as the kind its magic bytes claim.

    The picture size is checked against max_pixels from the header, before anything is
    decoded, so a small file that declares a huge picture costs no memory.
    """
    if kind == "image":
        from ..io.images import read_image

        read_image(path, max_pixels=max_pixels)
        return
    from ..io.video import VideoSource

    with VideoSource(path, max_pixels=max_pixels) as source:
        if next(iter(source.frames()), None) is None:
            raise InputError(f"{path.name}: video has no decodable frame")


def sanitize_name(name: str, fallback: str = "file") -> str:
    """A display name safe in a header, a zip entry and a file system: no folders, no controls."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r'[<>:"|?*]+', "_", name).strip().strip(".")
    stem, dot, ext = name.rpartition(".")
    if dot:
        stem, ext = stem[:100], ext[:10]
        name = f"{stem}.{ext}" if stem else ext
    else:
        name = name[:110]
    return name or fallback


def display_stem(name: str) -> str:
    stem = Path(sanitize_name(name)).stem
    return stem or "file"


def result_name(name: str, output: str) -> str:
    """The name a result is offered under: the upload's display name and the output's type."""
    return f"{display_stem(name)}_anonymized{Path(output).suffix}"


async def receive_upload(
    chunks: AsyncIterator[bytes],
    folder: Path,
    limit: int,
    *,
    stall_seconds: float = 30.0,
    total_seconds: float = 3600.0,
) -> tuple[Path, str]:
    """Stream chunks into folder/'upload.part' (0600); return the typed final path and its kind.

    The file is renamed to 'input<ext>' only once its type is known, so nothing
    the client sent (name or claimed type) ever shapes a path. Waiting more than
    stall_seconds for a chunk, or total_seconds in all, raises UploadTimeout.
    """
    part = folder / "upload.part"
    size = 0
    head = b""
    started = time.monotonic()
    stream = aiter(chunks)
    try:
        with open(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            while (
                chunk := await _next_chunk(stream, stall_seconds, started, total_seconds)
            ) is not None:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"upload is larger than the limit of {limit // 1_000_000} MB"
                    )
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                out.write(chunk)
        if size == 0:
            raise InputError("upload is empty")
        ext = sniff_extension(head)
        if ext is None:
            raise InputError("not a supported image or video (unknown file type)")
        final = folder / f"input{ext}"
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return final, kind_of(ext)


async def _next_chunk(
    stream: AsyncIterator[bytes], stall_seconds: float, started: float, total_seconds: float
) -> bytes | None:
    """The next chunk, None at the end; UploadTimeout when it is slow to come."""
    left = started + total_seconds - time.monotonic()
    try:
        return await asyncio.wait_for(anext(stream, None), min(stall_seconds, max(left, 0)))
    except asyncio.TimeoutError:
        if left <= stall_seconds:
            raise UploadTimeout(
                f"upload took longer than {total_seconds / 60:g} min; the partial file was deleted"
            ) from None
        raise UploadTimeout(
            f"upload stalled: nothing arrived for {stall_seconds:g} s; the partial file was deleted"
        ) from None
