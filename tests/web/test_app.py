"""The web API against a real `veil serve` on 127.0.0.1 (a subprocess, real uvicorn)."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from veil.web.options import form  # noqa: E402

from media import (  # noqa: E402
    LOW_MEMORY_ENV,
    ROOT,
    astronaut_face_hidden,
    blank_png,
    limit_memory,
    mean_abs_diff,
    panning_frames,
    read_video,
    write_video,
)
from webserver import Server, disposition_name, jpeg_bytes  # noqa: E402


@pytest.fixture(scope="module")
def photo(astronaut) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    Image.fromarray(astronaut[:, :, ::-1]).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def long_video(path: Path, astronaut, n: int) -> Path:
    return write_video(path, panning_frames(astronaut, n, step=1), fps=25)


def test_image_job_end_to_end(server, photo, astronaut):
    job = server.upload(photo, "../../etc/Holiday pic\x00.jpg")
    assert job["name"] == "Holiday pic.jpg"
    assert job["kind"] == "image"
    assert job["status"] in ("queued", "running")
    assert "output" not in job
    assert "path" not in json.dumps(job)
    done = server.wait(job["id"])
    assert done["status"] == "done"
    assert done["boxes"] == 1
    assert done["has_result"]
    status, headers, data = server.request("GET", f"/api/jobs/{job['id']}/result")
    assert status == 200
    assert disposition_name(headers["content-disposition"]) == "Holiday pic_anonymized.jpg"
    assert headers["content-disposition"].startswith("attachment")
    assert astronaut_face_hidden(astronaut, decode(data))
    assert not Image.open(io.BytesIO(data)).getexif(), "EXIF survived"
    inline = server.request("GET", f"/api/jobs/{job['id']}/result?download=false")[1]
    assert inline["content-disposition"].startswith("inline")
    # Only server-chosen names on disk, and the original is gone once processed.
    files = sorted(
        p.relative_to(server.data_dir).as_posix() for p in (server.data_dir / "jobs").rglob("*")
    )
    assert f"jobs/{job['id']}/result.jpg" in files
    assert not any("Holiday" in f or "input" in f for f in files)


def test_type_is_checked_from_content(server, photo, astronaut):
    status, _, body = server.request(
        "POST", "/api/jobs?name=photo.jpg", b"just some text, not a picture"
    )
    assert status == 400
    assert b"unknown file type" in body
    # Right magic bytes, broken body: refused by decoding, and named by its display name only.
    status, _, body = server.request(
        "POST", "/api/jobs?name=broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    )
    assert status == 400
    assert b"broken.png" in body
    assert str(server.data_dir).encode() not in body
    # A JPEG named .mp4 is treated as the image it is.
    job = server.upload(photo, "looks_like.mp4")
    assert job["kind"] == "image"
    assert server.wait(job["id"])["status"] == "done"
    leftovers = [p for p in (server.data_dir / "jobs").iterdir() if not any(p.iterdir())]
    assert leftovers == []


def test_bad_options_are_refused(server, photo):
    for params in (
        {"method": "none"},
        {"shape": "star"},
        {"targets": "plates"},
        {"mask_scale": "9"},
        {"method": "blur", "strength": "0.01"},
    ):
        status, _, body = server.request(
            "POST", "/api/jobs?name=a.jpg&" + "&".join(f"{k}={v}" for k, v in params.items()), photo
        )
        assert status == 400, params
        assert json.loads(body)["detail"]


def test_video_job_with_progress_events(server, face_video, astronaut):
    events: list[list[dict]] = []
    conn = http.client.HTTPConnection(server.base.split("//")[1], timeout=60)
    conn.request("GET", "/api/events", headers=server.cookie())
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("content-type").startswith("text/event-stream")
    job = server.upload(face_video.read_bytes(), "clip.mp4", method="pixelate", shape="rect")
    assert job["kind"] == "video"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = resp.readline().decode()
        if line.startswith("data: "):
            jobs = {j["id"]: j for j in json.loads(line[6:])}
            if job["id"] in jobs:
                events.append(jobs[job["id"]])
                if jobs[job["id"]]["status"] == "done":
                    break
    conn.close()
    assert events[-1]["status"] == "done"
    assert events[-1]["frames"] == 30
    assert events[-1]["done_frames"] == 30
    assert events[-1]["total_frames"] == 30
    assert events[-1]["has_review"] is True  # videos are processed with a review report
    status, headers, data = server.request("GET", f"/api/jobs/{job['id']}/result")
    assert status == 200
    assert disposition_name(headers["content-disposition"]) == "clip_anonymized.mp4"
    out = server.data_dir / "result_clip.mp4"
    out.write_bytes(data)
    after, _ = read_video(out)
    before, _ = read_video(face_video)
    assert len(after) == 30
    for i in (0, 15, 29):
        assert astronaut_face_hidden(before[i], after[i], shift=3 * i)
    for name in ("contact_sheet.png", "heatmap.png"):
        status, headers, data = server.request("GET", f"/api/jobs/{job['id']}/review/{name}")
        assert status == 200
        assert data.startswith(b"\x89PNG")
    status, _, data = server.request("GET", f"/api/jobs/{job['id']}/review/review.json")
    assert status == 200
    assert str(server.data_dir).encode() not in data  # no server path in the report
    report = json.loads(data)
    assert report["source"] == "clip.mp4"
    assert report["output"] == "clip_anonymized.mp4"


def test_cancel_running_video(server, tmp_path, astronaut):
    clip = long_video(tmp_path / "long.mp4", astronaut, 240)
    job = server.upload(clip.read_bytes(), "long.mp4")
    server.wait(job["id"], states=("running",))
    reply = server.json("POST", f"/api/jobs/{job['id']}/cancel")
    assert reply["cancelled"] is True
    final = server.wait(job["id"])
    assert final["status"] == "cancelled"
    assert not final["has_result"]
    assert list((server.data_dir / "jobs" / job["id"]).iterdir()) == []
    assert server.request("GET", f"/api/jobs/{job['id']}/result")[0] == 409
    assert server.json("POST", f"/api/jobs/{job['id']}/cancel")["cancelled"] is False


def test_zip_of_all_results_and_delete(server, photo):
    first = server.upload(photo, "same.jpg")
    second = server.upload(photo, "same.jpg")
    for job in (first, second):
        server.wait(job["id"])
    status, headers, data = server.request(
        "GET", f"/api/results.zip?ids={first['id']},{second['id']}"
    )
    assert status == 200
    assert headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["same_anonymized.jpg", "same_anonymized (2).jpg"]
        assert decode(archive.read("same_anonymized.jpg")).shape == (512, 512, 3)
    everything = server.request("GET", "/api/results.zip")
    assert everything[0] == 200
    assert len(zipfile.ZipFile(io.BytesIO(everything[2])).namelist()) >= 2
    assert server.request("DELETE", f"/api/jobs/{first['id']}")[0] == 204
    assert not (server.data_dir / "jobs" / first["id"]).exists()
    assert server.request("GET", f"/api/jobs/{first['id']}")[0] == 404
    assert server.request("GET", "/api/jobs/..%2F..%2Fetc")[0] == 404
    assert not list((server.data_dir / "tmp").glob("*.zip"))


def test_audit_record_downloads_with_the_result(server, photo):
    plain = server.upload(photo, "plain.jpg")
    audited = server.upload(photo, "desk.jpg", audit="true")
    assert not server.wait(plain["id"])["has_audit"]
    assert server.wait(audited["id"])["has_audit"]
    assert server.request("GET", f"/api/jobs/{plain['id']}/audit")[0] == 404
    status, headers, data = server.request("GET", f"/api/jobs/{audited['id']}/audit")
    assert status == 200
    assert disposition_name(headers["content-disposition"]) == "desk_anonymized.jpg.veil.json"
    record = json.loads(data)
    assert record["input"]["sha256"] == hashlib.sha256(photo).hexdigest()
    result = server.request("GET", f"/api/jobs/{audited['id']}/result")[2]
    assert record["output"]["sha256"] == hashlib.sha256(result).hexdigest()
    assert record["settings"]["audit"] is True
    zipped = server.request("GET", f"/api/results.zip?ids={plain['id']},{audited['id']}")[2]
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert sorted(archive.namelist()) == [
            "desk_anonymized.jpg",
            "desk_anonymized.jpg.veil.json",
            "plain_anonymized.jpg",
        ]


def test_page_openapi_and_no_outside_assets(server):
    status, _, page = server.request("GET", "/")
    assert status == 200
    assert b'id="drop"' in page
    for asset in ("/static/app.js", "/static/app.css"):
        status, _, body = server.request("GET", asset)
        assert status == 200
        assert b"http://" not in body
        assert b"https://" not in body
    assert b"https://" not in page
    assert b"http://" not in page
    schema = server.json("GET", "/openapi.json")
    assert (
        "application/octet-stream" in schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    )
    assert {"/api/jobs/{job_id}/result", "/api/results.zip", "/api/events"} <= set(schema["paths"])
    assert (
        server.request("GET", "/docs")[0] == 404
    )  # the interactive docs would load scripts from a CDN


def test_options_come_from_the_schema(server):
    """The page's controls are the option schema's web form as it is (its fields are checked
    in test_options.py), and the API's parameters are declared from the same schema."""
    served = server.json("GET", "/api/options")["fields"]
    assert served == json.loads(json.dumps(form()))
    fields = {f["name"]: f for f in served}
    parameters = {
        p["name"]: p
        for p in server.json("GET", "/openapi.json")["paths"]["/api/jobs"]["post"]["parameters"]
    }
    assert set(fields) <= set(parameters)
    assert parameters["method"]["schema"]["enum"] == ["blur", "pixelate", "fill"]
    assert parameters["mask_scale"]["schema"]["minimum"] == 1.0
    assert parameters["voice"]["schema"]["enum"] == ["keep", "mute", "pitch", "bleep"]
    assert parameters["audit"]["schema"]["type"] == "boolean"
    assert "voice_segments" in parameters


def test_page_has_no_option_of_its_own(server):
    """The page builds its controls from /api/options: a new web option needs no page edit."""
    page = server.request("GET", "/")[2] + server.request("GET", "/static/app.js")[2]
    for name in (b"pixelate", b"ellipse", b"mask_scale", b'"strength', b"0.4"):
        assert name not in page, name


def test_config_file_is_honoured(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text("keep-hours = 2\nmax-upload-mb = 5\nthreshold = 0.3\n")
    srv = Server(tmp_path / "data", "--config", str(config))
    try:
        limits = srv.json("GET", "/api/options")
        assert limits["keep_seconds"] == 7200
        assert limits["max_upload_bytes"] == 5_000_000
    finally:
        srv.stop()


def test_other_sites_and_hosts_are_refused(server, photo):
    status, _, _ = server.request(
        "POST", "/api/jobs?name=a.jpg", photo, headers={"Origin": "http://evil.example"}
    )
    assert status == 403
    assert server.request("GET", "/api/jobs", headers={"Host": "evil.example"})[0] == 403
    host = server.base.split("//")[1]
    assert server.request("GET", "/api/jobs", headers={"Origin": f"http://{host}"})[0] == 200


def test_upload_size_limit(tmp_path, photo):
    srv = Server(tmp_path / "data", "--max-upload-mb", "1")
    try:
        big = photo + b"\x00" * 1_200_000
        status, _, body = srv.request("POST", "/api/jobs?name=big.jpg", big)
        assert status == 413
        assert b"limit" in body
        # Without a Content-Length the limit is enforced while streaming.
        conn = http.client.HTTPConnection(srv.base.split("//")[1], timeout=30)
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        conn.request("POST", "/api/jobs?name=big.jpg", body=chunks, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413
        conn.close()
        assert list((srv.data_dir / "jobs").iterdir()) == []
        srv.upload(photo, "small.jpg")
    finally:
        srv.stop()


@pytest.mark.parametrize("kill", [True, False], ids=["killed", "stopped"])
def test_restart_keeps_results_and_marks_interrupted(tmp_path, photo, astronaut, kill):
    data = tmp_path / "data"
    first = Server(data)
    try:
        image_job = first.upload(photo, "kept.jpg")
        assert first.wait(image_job["id"])["status"] == "done"
        clip = long_video(tmp_path / "long.mp4", astronaut, 240)
        video_job = first.upload(clip.read_bytes(), "long.mp4")
        first.wait(video_job["id"], states=("running",))
    finally:
        first.stop(kill=kill)
    second = Server(data)
    second.session = first.session  # the same browser, after the restart
    try:
        jobs = {j["id"]: j for j in second.json("GET", "/api/jobs")}
        assert jobs[image_job["id"]]["status"] == "done"
        assert jobs[video_job["id"]]["status"] == "interrupted"
        assert "stopped" in jobs[video_job["id"]]["error"]
        status, _, body = second.request("GET", f"/api/jobs/{image_job['id']}/result")
        assert status == 200
        assert decode(body).shape == (512, 512, 3)
        assert list((data / "jobs" / video_job["id"]).iterdir()) == []  # no partial output survives
    finally:
        second.stop()


def test_token_required_when_set(tmp_path, photo):
    token = "s3cret-token-for-tests"
    srv = Server(tmp_path / "data", "--token", token)
    try:
        assert srv.request("GET", "/api/jobs")[0] == 401
        assert srv.request("GET", "/")[0] == 401
        assert srv.request("GET", "/openapi.json")[0] == 401
        assert (
            srv.request("GET", "/api/jobs", headers={"Authorization": "Bearer wrong-token-value"})[
                0
            ]
            == 401
        )
        assert (
            srv.request("GET", "/api/jobs", headers={"Authorization": f"Bearer {token}"})[0] == 200
        )
        assert srv.request("GET", "/api/jobs", headers={"X-Veil-Token": token})[0] == 200
        assert srv.address.endswith(f"?token={token}")
        status, headers, _ = srv.request("GET", f"/?token={token}")
        assert status == 200
        assert headers["set-cookie"].startswith(f"veil_token={token};")
        assert "HttpOnly" in headers["set-cookie"]
        assert srv.request("GET", "/api/jobs", headers={"Cookie": f"veil_token={token}"})[0] == 200
        srv.headers = {"Authorization": f"Bearer {token}"}
        assert srv.wait(srv.upload(photo, "t.jpg")["id"])["status"] == "done"
    finally:
        srv.stop()


def test_refuses_public_address_without_token(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "veil", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without --token" in proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = subprocess.run(
        [sys.executable, "-m", "veil", "serve", "--token", "short", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--token: a token must be 12 to 200 characters" in proc.stderr


def test_live_socket_returns_only_anonymized_frames(server, astronaut):
    from websockets.sync.client import connect

    url = server.base.replace("http://", "ws://") + "/api/live?method=blur"
    with connect(url, open_timeout=30) as ws:
        ws.send(jpeg_bytes(astronaut))
        reply = ws.recv(timeout=60)
        assert isinstance(reply, bytes)
        assert astronaut_face_hidden(astronaut, decode(reply))
        ws.send(b"\xff\xd8\xff garbage that is not a picture")
        reply = ws.recv(timeout=30)
        assert isinstance(reply, str)
        assert "nothing shown" in json.loads(reply)["error"]
        ws.send(jpeg_bytes(astronaut[:, ::-1].copy()))
        mirrored = decode(ws.recv(timeout=30))
        assert mean_abs_diff(astronaut[:, ::-1][80:160, 262:312], mirrored[80:160, 262:312]) > 12


def test_live_socket_refuses_other_origins(server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = server.base.replace("http://", "ws://") + "/api/live"
    with pytest.raises(InvalidStatus):
        with connect(url, origin="http://evil.example", open_timeout=30):
            pass


def test_review_files_of_a_stored_video_job(tmp_path, astronaut):
    """A finished video whose review report is on disk serves its contact sheet, nothing else."""
    from veil.web.store import DONE, JobStore

    store = JobStore(tmp_path)
    job_id = store.new_id()
    store.add(job_id, "clip.mp4", "video", {"method": "blur"})
    review = store.folder(job_id) / "result_review"
    review.mkdir(parents=True)
    cv2.imwrite(str(review / "contact_sheet.png"), astronaut[:64, :64])
    (review / "secret.txt").write_text("not served")
    store.update(job_id, status=DONE, output="result.mp4", review="result_review", frames=3)
    store.close()
    srv = Server(tmp_path)
    try:
        assert srv.json("GET", f"/api/jobs/{job_id}")["has_review"] is True
        status, headers, body = srv.request("GET", f"/api/jobs/{job_id}/review/contact_sheet.png")
        assert status == 200
        assert headers["content-type"] == "image/png"
        assert decode(body).shape == (64, 64, 3)
        assert srv.request("GET", f"/api/jobs/{job_id}/review/secret.txt")[0] == 404
        assert srv.request("GET", f"/api/jobs/{job_id}/review/..%2F..%2Fjobs.sqlite3")[0] == 404
        assert srv.request("GET", f"/api/jobs/{job_id}/review/heatmap.png")[0] == 404
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A server held to the 1.5 GB address space every part of veil must fit in."""
    srv = Server(tmp_path_factory.mktemp("web"), env=LOW_MEMORY_ENV, preexec_fn=limit_memory(1536))
    yield srv
    srv.stop()


@pytest.mark.slow
def test_a_huge_camera_frame_is_refused_in_one_line(bounded, tmp_path, astronaut):
    from websockets.sync.client import connect

    frame = blank_png(tmp_path / "huge.png", 30000, 30000).read_bytes()  # 900 MP in ~1 MB
    with connect(bounded.base.replace("http://", "ws://") + "/api/live", open_timeout=30) as ws:
        ws.send(frame)
        reply = ws.recv(timeout=60)
        assert isinstance(reply, str)
        error = json.loads(reply)["error"]
        assert "camera frame: 30000x30000 pixels" in error
        assert "\n" not in error
        ws.send(jpeg_bytes(astronaut))  # the socket goes on with the next frame
        assert astronaut_face_hidden(astronaut, decode(ws.recv(timeout=60)))


@pytest.mark.slow
def test_camera_frames_up_to_full_hd_fit_the_memory_bound(bounded, astronaut):
    from websockets.sync.client import connect

    full_hd = cv2.resize(astronaut, (1920, 1080))
    url = bounded.base.replace("http://", "ws://") + "/api/live"
    with connect(url, open_timeout=30, max_size=1 << 24) as ws:
        ws.send(jpeg_bytes(cv2.resize(astronaut, (2560, 1440))))
        assert "over the limit" in json.loads(ws.recv(timeout=60))["error"]
        ws.send(jpeg_bytes(full_hd))
        shown = decode(ws.recv(timeout=120))
    face = (slice(40 * 1080 // 512, 200 * 1080 // 512), slice(170 * 1920 // 512, 285 * 1920 // 512))
    assert mean_abs_diff(full_hd[face], shown[face]) > 12
    assert mean_abs_diff(full_hd[900:], shown[900:]) < 5  # detected, not hidden whole


@pytest.mark.slow
def test_a_huge_upload_is_refused_before_decoding(bounded, tmp_path):
    huge = blank_png(tmp_path / "huge.png", 19000, 19000).read_bytes()  # 361 MP in ~350 KB
    status, _, body = bounded.request("POST", "/api/jobs?name=huge.png", huge)
    assert status == 400
    assert "over the limit of 100 MP" in json.loads(body)["detail"]
    assert bounded.proc.poll() is None


@pytest.mark.slow
def test_a_photo_the_limit_allows_is_anonymized_within_1_5_gb(tmp_path):
    """The server's own peak resident memory (VmHWM), which does not grow with the core count
    as address space does; large photos are detected as a tiled pyramid."""
    srv = Server(tmp_path / "data", env=LOW_MEMORY_ENV)
    try:
        big = blank_png(tmp_path / "big.png", 6000, 6000).read_bytes()  # 36 MP in ~35 KB
        job = srv.upload(big, "big.png")
        assert srv.wait(job["id"], timeout=1200)["status"] == "done"
        status = Path(f"/proc/{srv.proc.pid}/status").read_text()
        peak = int(status.split("VmHWM:")[1].split()[0]) >> 10
    finally:
        srv.stop()
    assert peak <= 1536
