"""The web app's parts on their own: type sniffing, names, the job store, retention, live fail-closed."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from conftest import ASTRONAUT_FACE, mean_abs_diff, write_video  # noqa: E402
from veil.errors import OptionError  # noqa: E402
from veil.pipeline import Pipeline  # noqa: E402
from veil.web.live import LiveSession  # noqa: E402
from veil.web.options import check_options, job_options  # noqa: E402
from veil.web.store import CANCELLED, DONE, INTERRUPTED, QUEUED, RUNNING, JobStore  # noqa: E402
from veil.web.uploads import sanitize_name, sniff_extension  # noqa: E402
from veil.web.worker import WorkerPool  # noqa: E402
from webserver import jpeg_bytes  # noqa: E402


def encoded(astronaut, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut[:64, :64, ::-1]).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, ext", [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"),
                                      ("WEBP", ".webp"), ("GIF", ".gif")])
def test_sniff_images(astronaut, fmt, ext):
    assert sniff_extension(encoded(astronaut, fmt)[:512]) == ext


@pytest.mark.parametrize("name, ext", [("a.mp4", ".mp4"), ("a.mkv", ".mkv"), ("a.webm", ".webm"), ("a.mov", ".mov")])
def test_sniff_videos(tmp_path, astronaut, name, ext):
    codec = "libvpx" if ext == ".webm" else "libx264"
    path = write_video(tmp_path / name, [astronaut[:64, :64]] * 3, codec=codec)
    assert sniff_extension(path.read_bytes()[:512]) == ext


def test_sniff_unknown():
    assert sniff_extension(b"%PDF-1.7 ...") is None
    assert sniff_extension(b"") is None
    assert sniff_extension(b"\x00\x00\x00\x1cftypheic") is None


@pytest.mark.parametrize("raw, clean", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\photo.JPG", "photo.JPG"),
    ("bad\x00name\n.jpg", "badname.jpg"),
    ('a<b>:"c|?*.png', "a_b_c_.png"),
    ("...", "file"),
    ("", "file"),
    ("x" * 500 + ".jpg", "x" * 100 + ".jpg"),
])
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean


def test_options_map_to_job_options():
    chosen = check_options("pixelate", "rect", 4, 1.5, "face")
    opts = job_options(chosen, "video")
    assert (opts.anonymize.method, opts.anonymize.shape, opts.anonymize.strength, opts.anonymize.mask_scale) == \
        ("pixelate", "rect", 4, 1.5)
    assert opts.review is True and job_options(chosen, "image").review is False
    assert check_options("fill", strength=0.5)["strength"] is None
    with pytest.raises(OptionError, match="strength for pixelate"):
        check_options("pixelate", strength=20)


def test_store_survives_reopen_and_marks_interrupted(tmp_path):
    store = JobStore(tmp_path)
    ids = [store.new_id() for _ in range(3)]
    for job_id, name in zip(ids, ("a.jpg", "b.mp4", "c.jpg")):
        store.add(job_id, name, "image", {"method": "blur"})
    store.update(ids[0], status=DONE, output="result.jpg", boxes=2)
    assert store.set_status_if(ids[1], QUEUED, RUNNING)
    assert not store.set_status_if(ids[1], QUEUED, CANCELLED)
    store.close()
    reopened = JobStore(tmp_path)
    requeue = reopened.recover()
    states = {job.id: job.status for job in reopened.list()}
    assert states == {ids[0]: DONE, ids[1]: INTERRUPTED, ids[2]: QUEUED}
    assert [job.id for job in requeue] == [ids[2]]
    assert reopened.get(ids[0]).public()["has_result"] is True
    reopened.close()


def test_retention_sweep_deletes_old_results(tmp_path):
    store = JobStore(tmp_path)
    pool = WorkerPool(store, keep_seconds=3600)
    old, fresh, running = store.new_id(), store.new_id(), store.new_id()
    for job_id in (old, fresh, running):
        store.add(job_id, "x.jpg", "image", {})
        store.folder(job_id).mkdir()
        (store.folder(job_id) / "result.jpg").write_bytes(b"x")
    store.update(old, status=DONE, output="result.jpg", finished=time.time() - 7200)
    store.update(fresh, status=DONE, output="result.jpg")
    store.update(running, status=RUNNING)
    assert pool.sweep() == [old]
    assert not store.folder(old).exists() and store.get(old) is None
    assert store.folder(fresh).exists() and store.folder(running).exists()
    assert sorted(pool.sweep(now=time.time() + 7200)) == [fresh]
    store.close()


class Failing:
    """A detector whose inference breaks (a real failure mode: a corrupt model or out of memory)."""

    def detect(self, frames):
        raise MemoryError("out of memory")


def test_live_frame_fails_closed(astronaut):
    session = LiveSession(Pipeline(detector=Failing()))
    out = np.asarray(Image.open(io.BytesIO(session.process(jpeg_bytes(astronaut)))))[:, :, ::-1]
    assert out.shape == astronaut.shape
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert mean_abs_diff(astronaut[y1:y2, x1:x2], out[y1:y2, x1:x2]) > 12
    assert mean_abs_diff(astronaut[380:], out[380:]) > 12, "the whole frame must be hidden"
    assert session.process(b"not a picture") is None


def test_live_frame_anonymizes(astronaut):
    session = LiveSession(Pipeline())
    out = np.asarray(Image.open(io.BytesIO(session.process(jpeg_bytes(astronaut)))))[:, :, ::-1]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert mean_abs_diff(astronaut[y1 + 40:y2 - 40, x1 + 30:x2 - 30], out[y1 + 40:y2 - 40, x1 + 30:x2 - 30]) > 12
    assert mean_abs_diff(astronaut[380:], out[380:]) < 5
