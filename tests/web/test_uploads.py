"""Upload checks on their own: type sniffing from the first bytes, client file names."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytest.importorskip("fastapi")

from veil.web.uploads import sanitize_name, sniff_extension  # noqa: E402

from media import write_video  # noqa: E402


def encoded(astronaut, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut[:64, :64, ::-1]).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, ext",
    [
        ("JPEG", ".jpg"),
        ("PNG", ".png"),
        ("BMP", ".bmp"),
        ("TIFF", ".tif"),
        ("WEBP", ".webp"),
        ("GIF", ".gif"),
    ],
)
def test_sniff_images(astronaut, fmt, ext):
    assert sniff_extension(encoded(astronaut, fmt)[:512]) == ext


@pytest.mark.parametrize(
    "name, ext", [("a.mp4", ".mp4"), ("a.mkv", ".mkv"), ("a.webm", ".webm"), ("a.mov", ".mov")]
)
def test_sniff_videos(tmp_path, astronaut, name, ext):
    codec = "libvpx" if ext == ".webm" else "libx264"
    path = write_video(tmp_path / name, [astronaut[:64, :64]] * 3, codec=codec)
    assert sniff_extension(path.read_bytes()[:512]) == ext


def test_sniff_unknown():
    assert sniff_extension(b"%PDF-1.7 ...") is None
    assert sniff_extension(b"") is None
    assert sniff_extension(b"\x00\x00\x00\x1cftypheic") is None


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.JPG", "photo.JPG"),
        ("bad\x00name\n.jpg", "badname.jpg"),
        ('a<b>:"c|?*.png', "a_b_c_.png"),
        ("...", "file"),
        ("", "file"),
        ("x" * 500 + ".jpg", "x" * 100 + ".jpg"),
    ],
)
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean
