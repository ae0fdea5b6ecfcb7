"""A real `veil serve` in a subprocess on 127.0.0.1, and a small HTTP client for it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from media import ENV


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real server per test module that asks for it."""
    srv = Server(tmp_path_factory.mktemp("web"))
    yield srv
    srv.stop()


class Server:
    """`python -m veil serve --port 0 ...`; the printed address tells where it listens.

    Its requests behave as one browser: they carry the session cookie the server gave.
    """

    def __init__(
        self, data_dir: Path, *args: str, env: dict | None = None, preexec_fn=None
    ) -> None:
        self.data_dir = data_dir
        env = {**(env or ENV), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "veil",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=preexec_fn,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("veil web app: "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.address = line.split(": ", 1)[1].strip()
        self.base = self.address.split("?", 1)[0].rstrip("/")
        self.headers: dict[str, str] = {}
        self.session: str | None = None
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/api/options")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError("server never answered")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict | None = None,
        timeout: float = 30,
    ) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(
            self.base + path,
            data=body,
            method=method,
            headers={**self.cookie(), **self.headers, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, answer, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, answer, data = err.code, err.headers, err.read()
        for line in answer.get_all("set-cookie") or []:
            if line.startswith("veil_session=") and self.session is None:
                self.session = line.split(";", 1)[0]
        return status, dict(answer), data

    def cookie(self) -> dict[str, str]:
        """The Cookie header of this client's browser session (empty before the first answer)."""
        return {"Cookie": self.session} if self.session else {}

    def json(self, method: str, path: str, body: bytes | None = None, expect: int = 200, **kw):
        status, _, data = self.request(method, path, body, **kw)
        assert status == expect, (status, data)
        return json.loads(data) if data else None

    def upload(self, data: bytes, name: str, expect: int = 201, **params) -> dict:
        from urllib.parse import urlencode

        return self.json(
            "POST", "/api/jobs?" + urlencode({"name": name, **params}), data, expect=expect
        )

    def wait(
        self,
        job_id: str,
        states=("done", "failed", "cancelled", "interrupted"),
        timeout: float = 120,
    ) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.json("GET", f"/api/jobs/{job_id}")
            if job["status"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} stuck in {job['status']}")

    def start_upload(self, first: bytes, length: int, name: str = "held.png") -> socket.socket:
        """An upload that announces `length` bytes and sends only `first`: the open socket,
        once the server has begun storing it (its partial file is there)."""
        host, port = self.base.split("//")[1].rsplit(":", 1)
        before = self.partial_uploads()
        sock = socket.create_connection((host, int(port)), timeout=60)
        extra = "".join(f"{k}: {v}\r\n" for k, v in {**self.cookie(), **self.headers}.items())
        head = (
            f"POST /api/jobs?name={name} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n{extra}\r\n"
        )
        sock.sendall(head.encode() + first)
        deadline = time.monotonic() + 30
        while self.partial_uploads() <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        return sock

    def partial_uploads(self) -> int:
        return len(list((self.data_dir / "jobs").glob("*/upload.part")))

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (VmHWM), in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        return int(kib) / 1024

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stderr.closed:
            self.log = self.proc.stderr.read()  # what the server said, for tests to check
        self.proc.stdout.close()
        self.proc.stderr.close()


def jpeg_bytes(bgr) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return data.tobytes()


def disposition_name(header: str) -> str:
    """The file name a Content-Disposition header gives (plain or RFC 5987 form)."""
    from urllib.parse import unquote

    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename*":
            return unquote(value.split("''", 1)[1])
        if key == "filename":
            return value.strip('"')
    raise AssertionError(f"no file name in {header!r}")


def answer(sock: socket.socket) -> tuple[int, str]:
    """The status and body of the HTTP answer that arrives on a raw socket."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data and data.endswith(b"}"):
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()
