"""A real `veil serve` takes in a bounded amount: its queue and each client's uploads (429)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from webserver import Server, jpeg_bytes  # noqa: E402

PNG_START = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


@pytest.fixture()
def busy_server(tmp_path):
    srv = Server(
        tmp_path / "data", "--max-client-uploads", "1", "--max-queued", "2", "--workers", "1"
    )
    yield srv
    srv.stop()


def another_browser(server: Server) -> Server:
    import copy

    other = copy.copy(server)
    other.session = None
    other.request("GET", "/api/options")
    return other


def test_a_client_may_send_only_its_share_of_uploads_at_once(busy_server, astronaut):
    held = busy_server.start_upload(PNG_START, 10_000_000)
    try:
        status, headers, body = busy_server.request(
            "POST", "/api/jobs?name=a.jpg", jpeg_bytes(astronaut)
        )
        assert status == 429
        assert b"too many uploads at once from this client" in body
        assert headers["retry-after"]
        assert another_browser(busy_server).upload(jpeg_bytes(astronaut), "b.jpg")["id"]
    finally:
        held.close()


def test_the_queue_is_bounded(busy_server, astronaut):
    first = busy_server.start_upload(PNG_START, 10_000_000)
    second = another_browser(busy_server).start_upload(PNG_START, 10_000_000)
    try:
        third = another_browser(busy_server)
        status, _, body = third.request("POST", "/api/jobs?name=c.jpg", jpeg_bytes(astronaut))
        assert status == 429
        assert b"queue is full" in body
        assert body.count(b"\n") == 0
    finally:
        first.close()
        second.close()
    deadline = time.monotonic() + 30
    while busy_server.partial_uploads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert busy_server.partial_uploads() == 0  # cut-off uploads leave nothing behind
    assert third.upload(jpeg_bytes(astronaut), "c.jpg")["id"]
    busy_server.stop()
    assert "Traceback" not in busy_server.log  # a client's abort is no server error
