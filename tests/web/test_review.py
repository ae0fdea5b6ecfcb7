"""The review API on a real server: a video's kept detections, frames served anonymized,
corrections that follow the face, re-rendered versions."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from media import ASTRONAUT_FACE, astronaut_face_hidden, read_video  # noqa: E402
from webserver import Server  # noqa: E402


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A server whose threshold misses the astronaut on purpose."""
    srv = Server(tmp_path_factory.mktemp("review"), "--threshold", "0.99")
    yield srv
    srv.stop()


@pytest.fixture()
def missed(strict, face_video):
    job = strict.upload(face_video.read_bytes(), "clip.mp4")
    assert strict.wait(job["id"])["status"] == "done"
    return job["id"]


def frame(srv: Server, job_id: str, index: int, original: bool = False) -> np.ndarray:
    status, headers, data = srv.request(
        "GET", f"/api/jobs/{job_id}/frames/{index}?original={str(original).lower()}"
    )
    assert status == 200, data
    assert headers["content-type"] == "image/jpeg"
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def edit(srv: Server, job_id: str, **body) -> dict:
    return srv.json(
        "POST",
        f"/api/jobs/{job_id}/edits",
        json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def test_a_box_added_on_one_frame_covers_the_face_in_the_next_version(
    strict, missed, face_video, tmp_path
):
    originals, _ = read_video(face_video)
    overview = strict.json("GET", f"/api/jobs/{missed}/detections")
    assert overview["frames"] == len(originals)
    assert overview["rows"] == []
    assert overview["versions"] == ["result.mp4"]
    # Frames are served with the current detections applied: none yet, so the face shows.
    assert not astronaut_face_hidden(originals[10], frame(strict, missed, 10), background=8)
    x1, y1, x2, y2 = ASTRONAUT_FACE
    out = edit(strict, missed, op="add", frame=10, box=[x1 + 30, y1, x2 + 30, y2])
    assert sorted(r["frame"] for r in out["rows"]) == list(range(len(originals)))
    assert out["tracks"][0]["start"] == 0
    assert astronaut_face_hidden(originals[10], frame(strict, missed, 10), shift=30, background=8)
    # The owner's "show original" toggle gets the original pixels, and the server logs it.
    assert not astronaut_face_hidden(
        originals[10], frame(strict, missed, 10, original=True), shift=30, background=8
    )
    assert strict.json("POST", f"/api/jobs/{missed}/rerender", expect=202)["status"] == "queued"
    job = strict.wait(missed)
    assert job["status"] == "done"
    assert job["error"] is None
    versions = strict.json("GET", f"/api/jobs/{missed}/detections")["versions"]
    assert versions == ["result.mp4", "result-v2.mp4"]
    for number, hidden in [(2, True), (1, False)]:
        status, _, data = strict.request("GET", f"/api/jobs/{missed}/result?version={number}")
        assert status == 200
        path = tmp_path / f"v{number}.mp4"
        path.write_bytes(data)
        rendered, _ = read_video(path)
        assert len(rendered) == len(originals)
        covered = [
            astronaut_face_hidden(o, r, shift=3 * i, background=8)
            for i, (o, r) in enumerate(zip(originals, rendered))
        ]
        assert all(covered) if hidden else not any(covered), (number, covered)


def test_delete_a_track_and_mark_one_do_not_hide(strict, missed):
    x1, y1, x2, y2 = ASTRONAUT_FACE
    first = edit(strict, missed, op="add", frame=0, box=[x1, y1, x2, y2])["track_id"]
    out = edit(strict, missed, op="hide", track_id=first, hide=False)
    assert out["tracks"][0]["hide"] is False
    out = edit(strict, missed, op="move", frame=0, track_id=first, box=[x1, y1, x2 + 9, y2 + 9])
    assert [(r["x2"], r["y2"]) for r in out["rows"] if r["frame"] == 0] == [(x2 + 9, y2 + 9)]
    out = edit(strict, missed, op="delete", track_id=first)
    assert out["rows"] == []


def test_bad_edits_and_unknown_jobs_are_refused(strict, missed):
    status, _, body = strict.request(
        "POST",
        f"/api/jobs/{missed}/edits",
        json.dumps({"op": "delete", "track_id": 42}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert "no track 42" in json.loads(body)["detail"]
    status, _, _ = strict.request(
        "PUT",
        f"/api/jobs/{missed}/detections",
        json.dumps([{"frame": 0, "x1": 5, "y1": 5, "x2": 1, "y2": 9}]).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    status, _, _ = strict.request("GET", f"/api/jobs/{missed}/frames/999")
    assert status == 404
    status, _, _ = strict.request("GET", f"/api/jobs/{'0' * 32}/detections")
    assert status == 404


def test_photos_have_nothing_to_review_and_keep_no_original(strict, astronaut):
    from webserver import jpeg_bytes

    job = strict.upload(jpeg_bytes(astronaut), "a.jpg")
    assert strict.wait(job["id"])["status"] == "done"
    status, _, _ = strict.request("GET", f"/api/jobs/{job['id']}/detections")
    assert status == 404
    assert not list((strict.data_dir / "jobs" / job["id"]).glob("input.*"))


def test_each_original_frame_shown_is_logged(tmp_path, face_video):
    import signal

    srv = Server(tmp_path / "data")
    try:
        job = srv.upload(face_video.read_bytes(), "clip.mp4")
        assert srv.wait(job["id"])["status"] == "done"
        frame(srv, job["id"], 3)
        frame(srv, job["id"], 7, original=True)
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(timeout=30)
        log = srv.proc.stderr.read()
    finally:
        srv.stop()
    assert f"job {job['id']}: the original of frame 7 was shown" in log
    assert "frame 3 was shown" not in log


def test_only_the_uploading_session_sees_the_original(strict, missed):
    other = strict.session
    strict.session = "veil_session=" + "0" * 43  # another browser: a session of its own
    try:
        status, _, data = strict.request("GET", f"/api/jobs/{missed}/frames/3?original=true")
        assert status == 403, data
        assert b"session that uploaded it" in data
        assert strict.request("GET", f"/api/jobs/{missed}/frames/3")[0] == 200  # anonymized
    finally:
        strict.session = other
    assert strict.request("GET", f"/api/jobs/{missed}/frames/3?original=true")[0] == 200


def test_a_rerender_with_an_audit_record_lists_the_edits(strict, face_video):
    job = strict.upload(face_video.read_bytes(), "clip.mp4", audit="true")
    assert strict.wait(job["id"])["status"] == "done"
    first = strict.json("GET", f"/api/jobs/{job['id']}/audit")
    assert first["edits"] == []
    x1, y1, x2, y2 = ASTRONAUT_FACE
    out = edit(strict, job["id"], op="add", frame=10, box=[x1 + 30, y1, x2 + 30, y2])
    edit(strict, job["id"], op="hide", track_id=out["track_id"], hide=False)
    strict.json("POST", f"/api/jobs/{job['id']}/rerender", expect=202)
    assert strict.wait(job["id"])["status"] == "done"
    record = strict.json("GET", f"/api/jobs/{job['id']}/audit")
    assert record["output"]["name"].startswith("result-v2")
    assert [e["action"] for e in record["edits"]] == ["add", "keep"]
    added = record["edits"][0]
    assert (added["frame"], added["track"]) == (10, out["track_id"])
    assert added["box"] == [x1 + 30, y1, x2 + 30, y2]
    assert added["who"].startswith("browser session ")
    assert strict.session.split("=", 1)[1] not in json.dumps(record)  # never the cookie
