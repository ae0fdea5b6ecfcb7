"""Who may talk to the server, which jobs each caller sees, and the headers every answer carries.

Plain ASGI so the same check covers HTTP requests, server-sent events and
WebSockets (FastAPI's HTTP middleware does not see WebSockets).

- With a token, every request must carry it (with several, one of them):
  `Authorization: Bearer T`, an `X-Veil-Token: T` header, the `veil_token` cookie, or
  `?token=T`. Opening the page once with `?token=T` stores the cookie, so the page's own
  requests, its event stream and its WebSocket all carry it. Tokens may be labelled
  (`--token alice:SECRET,bob:SECRET2`, one per person): the label names the editor in
  audit records of reviewed videos.
- Without a token the server listens on loopback only, and the Host header
  must name loopback too: a web page that rebinds its own domain name to
  127.0.0.1 cannot reach the API.
- Only this server's own pages may talk to it: a request whose Origin is anything else,
  `null` included (what a sandboxed frame or a local file sends), is refused, and so is a
  request the browser marks as sent from another site, unless the user navigated to the
  page; other sites open in the same browser can neither post jobs nor open the camera socket.
- Each browser gets a random session cookie; the job lists show only that session's jobs.
- Every answer forbids framing (X-Frame-Options, CSP frame-ancestors), content sniffing,
  outside scripts and referrers (the address may hold the token).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

COOKIE = "veil_token"
SESSION_COOKIE = "veil_session"
SESSION_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
SESSION_MAX_AGE = 30 * 24 * 3600
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{12,200}$")
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
UNLABELLED = "token holder"
CSP = (
    "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


@dataclass(frozen=True)
class Caller:
    """Who sent a request: its session, the client its limits count against, and whether it
    proved the token (only a token holder may list every session's jobs)."""

    session: str
    client: str
    label: str | None = None  # the label of the token proved (UNLABELLED if it has none)

    @property
    def token_holder(self) -> bool:
        return self.label is not None

    @property
    def owner(self) -> str:
        """The key jobs are filed under: a hash, so the job list never holds a live cookie."""
        return hashlib.sha256(self.session.encode()).hexdigest()[:32]


def parse_tokens(text: str | None) -> dict[str, str]:
    """--token's value: one secret, or comma-separated LABEL:SECRET pairs, as {secret: label}.

    A secret is 12 to 200 of A-Z a-z 0-9 . _ ~ - (safe in a URL); a label up to 64 of
    A-Z a-z 0-9 . _ @ -. Raises ValueError with a one-line reason."""
    if text is None:
        return {}
    tokens: dict[str, str] = {}
    for part in text.split(","):
        label, _, secret = part.strip().rpartition(":")
        if not TOKEN_PATTERN.match(secret):
            raise ValueError("a token must be 12 to 200 characters of A-Z a-z 0-9 . _ ~ -")
        if label and not LABEL_PATTERN.match(label):
            raise ValueError(f"token label {label!r}: up to 64 of A-Z a-z 0-9 . _ @ -")
        if secret in tokens or (label and label in tokens.values()):
            raise ValueError("each token and each label may appear once")
        tokens[secret] = label or UNLABELLED
    return tokens


def caller_of(scope: Scope) -> Caller:
    """The Caller the guard attached to this request."""
    return scope["state"]["caller"]


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1), with or without brackets."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name part of a Host header ('127.0.0.1:8765' -> '127.0.0.1', '[::1]:80' -> '[::1]')."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AccessGuard:
    def __init__(self, app: Callable, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens  # secret -> label; empty: no token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        if scope["type"] == "http":
            send = _with_headers(send, SECURITY_HEADERS)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(scope, receive, send, *refusal)
            return
        cookie = SimpleCookie(headers.get("cookie", ""))
        offered = [
            headers.get("authorization", "").removeprefix("Bearer ").strip() or None,
            headers.get("x-veil-token"),
            cookie[COOKIE].value if COOKIE in cookie else None,
            _query_token(scope),
        ]
        held = self._held(offered)
        if self.tokens and held is None:
            await _refuse(
                scope,
                receive,
                send,
                401,
                "a valid token is needed (open the address printed by veil serve)",
            )
            return
        new_cookies = []
        if offered[3] and scope["type"] == "http":
            new_cookies.append(f"{COOKIE}={held}; Path=/; HttpOnly; SameSite=Strict")
        session = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else ""
        if SESSION_PATTERN.match(session):
            client = f"session:{session}"
        else:
            session = secrets.token_urlsafe(32)
            peer = scope.get("client") or ("unknown", 0)
            client = f"address:{peer[0]}"
            new_cookies.append(
                f"{SESSION_COOKIE}={session}; Path=/; Max-Age={SESSION_MAX_AGE}; HttpOnly; "
                "SameSite=Lax"
            )
        label = self.tokens[held] if held else None
        scope.setdefault("state", {})["caller"] = Caller(session, client, label)
        if new_cookies and scope["type"] == "http":
            send = _with_headers(send, [(b"set-cookie", c.encode("latin-1")) for c in new_cookies])
        await self.app(scope, receive, send)

    def _held(self, offered: list[str | None]) -> str | None:
        """The token the request proved, if any (the query's first: it replaces a cookie)."""
        for candidate in (offered[3], *offered[:3]):
            for secret in self.tokens:
                if candidate and hmac.compare_digest(candidate.encode(), secret.encode()):
                    return secret
        return None

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """Why a request may not reach the app (status, one line), or None."""
        host = headers.get("host", "")
        if not self.tokens and not is_loopback(_host_name(host)):
            return 403, "this server only answers to 127.0.0.1 or localhost"
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return 403, "requests from other web sites are refused"
        site = headers.get("sec-fetch-site", "")
        navigation = scope["type"] == "http" and headers.get("sec-fetch-mode") == "navigate"
        if site in ("cross-site", "same-site") and not navigation:
            return 403, "requests from other web sites are refused"
        return None


def _query_token(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [None])[0]


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """send, adding these headers to the response's start."""

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # the connect event
        await send({"type": "websocket.close", "code": 1008, "reason": reason})
        return
    body = json.dumps({"detail": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
