"""Uploads: type sniffing from the first bytes, client file names, and against a real server,
slow or stalled uploads and the pixel limit."""

from __future__ import annotations

import io
import json
import select

import pytest
from PIL import Image

pytest.importorskip("fastapi")

from veil.web.uploads import sanitize_name, sniff_extension  # noqa: E402

from media import blank_png, write_video  # noqa: E402
from webserver import Server, answer  # noqa: E402

PNG_START = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


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


@pytest.fixture(scope="module")
def impatient(tmp_path_factory):
    """A server that waits 1 s for the next piece of an upload, and 4 s for the whole of it."""
    srv = Server(
        tmp_path_factory.mktemp("web"),
        "--upload-stall-seconds",
        "1",
        "--upload-minutes",
        str(4 / 60),
    )
    yield srv
    srv.stop()


def test_a_stalled_upload_is_cut_off_and_deleted(impatient):
    sock = impatient.start_upload(PNG_START, 100_000)
    with sock:
        status, body = answer(sock)
    assert status == 408
    assert "stalled" in json.loads(body)["detail"]
    assert list((impatient.data_dir / "jobs").iterdir()) == []


def test_a_slow_upload_is_cut_off_and_deleted(impatient):
    sock = impatient.start_upload(PNG_START, 100_000)
    with sock:
        while not select.select([sock], [], [], 0.3)[0]:
            sock.sendall(b"\x00" * 50)  # always within the stall time, never done
        status, body = answer(sock)
    assert status == 408
    assert "took longer than" in json.loads(body)["detail"]
    assert list((impatient.data_dir / "jobs").iterdir()) == []


def test_a_picture_over_the_servers_pixel_limit_is_refused_before_decoding(tmp_path):
    srv = Server(tmp_path / "data", "--max-pixels", "1000000")
    try:
        big = blank_png(tmp_path / "big.png", 6000, 6000).read_bytes()
        status, _, body = srv.request("POST", "/api/jobs?name=big.png", big)
        assert status == 400
        assert "big.png: 6000x6000 pixels" in json.loads(body)["detail"]
        assert "over the limit of 1 MP" in json.loads(body)["detail"]
        assert srv.peak_rss_mb() < 1000  # the server never decoded it
    finally:
        srv.stop()
