"""Who may call a real `veil serve`: its own pages only, each session its own jobs, privately."""

from __future__ import annotations

import copy
import http.client
import io
import json
import stat
import zipfile

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from webserver import Server, jpeg_bytes  # noqa: E402


@pytest.fixture(scope="module")
def photo(astronaut) -> bytes:
    return jpeg_bytes(astronaut)


def browser(server: Server) -> Server:
    """Another browser on the same server: a client with its own session cookie."""
    other = copy.copy(server)
    other.session, other.headers = None, dict(server.headers)
    other.request("GET", "/api/options")
    assert other.session is not None
    return other


@pytest.mark.parametrize(
    "origin", ["null", "http://evil.example", "file://", "chrome-extension://x"]
)
def test_only_the_servers_own_origin_may_post(server, photo, origin):
    status, _, body = server.request(
        "POST", "/api/jobs?name=a.jpg", photo, headers={"Origin": origin}
    )
    assert status == 403
    assert b"other web sites" in body


def test_own_origin_is_accepted(server):
    host = server.base.split("//")[1]
    assert server.request("GET", "/api/jobs", headers={"Origin": f"http://{host}"})[0] == 200


def test_cross_site_requests_are_refused_but_navigation_is_not(server):
    fetch = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    assert server.request("GET", "/api/jobs", headers=fetch)[0] == 403
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert server.request("GET", "/", headers=navigate)[0] == 200


def test_live_socket_refuses_a_null_origin(server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = server.base.replace("http://", "ws://") + "/api/live"
    with pytest.raises(InvalidStatus):
        with connect(url, origin="null", open_timeout=30):
            pass


@pytest.mark.parametrize("path", ["/", "/api/jobs", "/static/app.js", "/api/jobs/nope"])
def test_every_answer_forbids_framing_and_sniffing(server, path):
    _, headers, _ = server.request("GET", path)
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_refusals_carry_the_headers_too(server):
    _, headers, _ = server.request("GET", "/api/jobs", headers={"Origin": "null"})
    assert headers["x-frame-options"] == "DENY"


def test_session_cookie_is_http_only(server):
    first_visit = copy.copy(server)
    first_visit.session = None
    _, headers, _ = first_visit.request("GET", "/")
    assert "veil_session=" in headers["set-cookie"]
    assert "HttpOnly" in headers["set-cookie"]
    assert "SameSite=Lax" in headers["set-cookie"]


def test_each_session_lists_only_its_own_jobs(server, photo):
    mine = server.upload(photo, "mine.jpg")
    server.wait(mine["id"])
    other = browser(server)
    assert mine["id"] in {j["id"] for j in server.json("GET", "/api/jobs")}
    assert mine["id"] not in {j["id"] for j in other.json("GET", "/api/jobs")}


def test_another_sessions_zip_is_empty(server, photo):
    mine = server.upload(photo, "mine.jpg")
    server.wait(mine["id"])
    assert server.request("GET", "/api/results.zip")[0] == 200
    assert browser(server).request("GET", "/api/results.zip")[0] == 404


def test_another_sessions_events_leave_the_job_out(server, photo):
    mine = server.upload(photo, "mine.jpg")
    other = browser(server)
    conn = http.client.HTTPConnection(server.base.split("//")[1], timeout=30)
    conn.request("GET", "/api/events", headers=other.cookie())
    resp = conn.getresponse()
    line = resp.readline().decode()
    while not line.startswith("data: "):
        line = resp.readline().decode()
    conn.close()
    assert mine["id"] not in {j["id"] for j in json.loads(line[6:])}


def test_listing_every_session_needs_the_token(server):
    assert server.request("GET", "/api/jobs?all=true")[0] == 403


def test_a_token_holder_may_list_every_session(tmp_path, photo):
    token = "s3cret-token-for-tests"
    srv = Server(tmp_path / "data", "--token", token)
    try:
        srv.headers = {"Authorization": f"Bearer {token}"}
        first = srv.upload(photo, "first.jpg")
        second = browser(srv).upload(photo, "second.jpg")
        for job in (first, second):
            srv.wait(job["id"])
        assert {j["id"] for j in srv.json("GET", "/api/jobs")} == {first["id"]}
        everyone = {j["id"] for j in srv.json("GET", "/api/jobs?all=true")}
        assert everyone == {first["id"], second["id"]}
        status, _, data = srv.request("GET", "/api/results.zip?all=true")
        assert status == 200
        assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 2
    finally:
        srv.stop()


def test_data_files_and_folders_are_private(tmp_path, photo):
    srv = Server(tmp_path / "data")
    try:
        srv.wait(srv.upload(photo, "p.jpg")["id"])
        entries = [srv.data_dir, *srv.data_dir.rglob("*")]
        modes = {p.name: (p.is_dir(), stat.S_IMODE(p.stat().st_mode)) for p in entries}
    finally:
        srv.stop()
    assert len(modes) >= 5  # data, jobs, the job's folder, its result, the job list
    for name, (folder, mode) in modes.items():
        assert mode == (0o700 if folder else 0o600), (name, oct(mode))


def test_labelled_tokens_each_open_the_server_and_name_their_holder(tmp_path, face_video):
    """One token per person (`--token LABEL:SECRET,...`): each works, and a reviewed video's
    audit record names the editor by the label of the token used, never the secret."""
    alice, bob = "alice-secret-0001", "bob-secret-00002"
    srv = Server(tmp_path / "data", "--token", f"alice:{alice},bob:{bob}", "--threshold", "0.99")
    try:
        assert (
            srv.request("GET", "/api/jobs", headers={"X-Veil-Token": "not-a-token-000"})[0] == 401
        )
        srv.headers = {"Authorization": f"Bearer {bob}"}
        assert srv.request("GET", "/api/jobs")[0] == 200
        srv.headers = {"Authorization": f"Bearer {alice}"}
        job = srv.upload(face_video.read_bytes(), "clip.mp4", audit="true")
        assert srv.wait(job["id"])["status"] == "done"
        body = json.dumps({"op": "add", "frame": 3, "box": [170, 40, 285, 200]}).encode()
        headers = {"Content-Type": "application/json"}
        srv.json("POST", f"/api/jobs/{job['id']}/edits", body, headers=headers)
        srv.json("POST", f"/api/jobs/{job['id']}/rerender", expect=202)
        assert srv.wait(job["id"])["status"] == "done"
        record = srv.json("GET", f"/api/jobs/{job['id']}/audit")
    finally:
        srv.stop()
    assert [edit["who"] for edit in record["edits"]] == ["alice"]
    assert alice not in json.dumps(record)


@pytest.mark.parametrize(
    "token, message",
    [
        ("short", "12 to 200 characters"),
        ("a b:long-enough-secret", "token label 'a b'"),
        ("x:long-enough-secret,x:another-long-secret", "appear once"),
    ],
)
def test_bad_tokens_are_a_one_line_error(tmp_path, token, message):
    from media import run_veil

    proc = run_veil("serve", "--token", token, "--data-dir", tmp_path / "d")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
