"""Who may talk to the server: a token when one is set, and never another web site.

Plain ASGI so the same check covers HTTP requests, server-sent events and
WebSockets (FastAPI's HTTP middleware does not see WebSockets).

- With a token, every request must carry it: `Authorization: Bearer T`, an
  `X-Veil-Token: T` header, the `veil_token` cookie, or `?token=T`. Opening the
  page once with `?token=T` stores the cookie, so the page's own requests,
  its event stream and its WebSocket all carry it.
- Without a token the server listens on loopback only, and the Host header
  must name loopback too: a web page that rebinds its own domain name to
  127.0.0.1 cannot reach the API.
- A request that states an Origin other than this server is refused, so other
  sites open in the same browser can neither post jobs nor open the camera socket.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

COOKIE = "veil_token"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


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
    def __init__(self, app: Callable, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        host = headers.get("host", "")
        origin = headers.get("origin")
        if self.token is None and not is_loopback(_host_name(host)):
            await self._refuse(
                scope, receive, send, 403, "this server only answers to 127.0.0.1 or localhost"
            )
            return
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != host.lower():
            await self._refuse(
                scope, receive, send, 403, "requests from other web sites are refused"
            )
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = (query.get("token") or [None])[0]
        cookie = SimpleCookie(headers.get("cookie", ""))
        offered = [
            headers.get("authorization", "").removeprefix("Bearer ").strip() or None,
            headers.get("x-veil-token"),
            cookie[COOKIE].value if COOKIE in cookie else None,
            from_query,
        ]
        if not any(t and hmac.compare_digest(t.encode(), self.token.encode()) for t in offered):
            await self._refuse(
                scope,
                receive,
                send,
                401,
                "a valid token is needed (open the address printed by veil serve)",
            )
            return
        if from_query and scope["type"] == "http":
            send = self._with_cookie(send)
        await self.app(scope, receive, send)

    def _with_cookie(self, send: Send) -> Send:
        value = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", value)],
                }
            await send(message)

        return wrapped

    @staticmethod
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
