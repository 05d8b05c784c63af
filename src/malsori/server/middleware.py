"""ASGI middleware that runs before any body is read: the trusted-host and same-origin
checks (DNS rebinding, cross-site form posts), the early API-key check, request metrics, and
``Connection: close`` on answers given before a body was read."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import KEY_CHALLENGE, KEY_MESSAGE, key_accepted
from .errors import error_body, send_json
from .settings import ServerSettings
from .state import Metrics


def _host_name(host: str) -> str | None:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``[::1]``; None when what
    follows the name is not ``:`` and a port number (``localhost:8791.evil.com`` was read as
    ``localhost``)."""
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        if not bracket:
            return None
        name += "]"
    elif host.count(":") > 1:  # a bare IPv6 address is not a valid Host header
        return None
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
    if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
        return None
    if rest and not 0 < int(rest[1:]) < 65536:
        return None
    return name


class CloseWhenBodyUnread:
    """``Connection: close`` on an answer that starts before the request's body was read to
    its end (a GET that declares a body, an upload refused by the Host or Origin check): the
    protocol ends such a connection once the answer is sent (protocol.py), and the header
    tells the client so instead of leaving it to find a closed socket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _declares_body(scope):
            await self.app(scope, receive, send)
            return
        read_all = False

        async def tracking_receive() -> Message:
            nonlocal read_all
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                read_all = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not read_all:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, closing_send)


def _declares_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class UploadKey:
    """401 for an upload (``POST /v1/...``) without the API key, before a byte of its body is
    read (the routes check the key again, for every path that needs it). Inside CORS, so a
    browser on an allowed origin can read the refusal."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.key = settings.api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.key is not None
            and scope.get("method") == "POST"
            and str(scope.get("path", "")).startswith("/v1/")
        ):
            headers = dict(scope["headers"])
            if not key_accepted(headers.get(b"authorization", b"").decode("latin-1"), self.key):
                body = error_body(KEY_MESSAGE, "authentication_error", None, "invalid_api_key")
                # the unread body stays on the connection: it ends with the answer
                await send_json(
                    send,
                    401,
                    body,
                    close=True,
                    extra=[(b"www-authenticate", KEY_CHALLENGE.encode())],
                )
                return
        await self.app(scope, receive, send)


class RequestGuard:
    """400 for a Host header the server does not answer to; 403 for a request whose
    ``Origin`` is neither the server's own origin nor an allowed CORS origin."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.hosts = settings.trusted_hosts()
        self.origins = {o.rstrip("/") for o in settings.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if self.hosts is not None and host and _host_name(host) not in self.hosts:
            body = error_body(
                "invalid Host header: this server does not answer to that name "
                "(a reverse proxy's name goes into MALSORI_ALLOWED_HOSTS)",
                "invalid_request_error",
                None,
                "invalid_host",
            )
            await send_json(send, 400, body)
            return
        origin = headers.get(b"origin")
        if origin is not None:
            value = origin.decode("latin-1").strip().rstrip("/")
            # Same host and port as the (trusted) Host header: the server's own page, also
            # behind a proxy that terminates TLS (the scheme may differ).
            scheme, _, rest = value.lower().partition("://")
            own = scheme in ("http", "https") and rest == host
            if not own and value not in self.origins and "*" not in self.origins:
                body = error_body(
                    f"cross-origin request refused: origin {value!r} is not allowed "
                    "(allowed origins go into MALSORI_CORS_ORIGINS)",
                    "invalid_request_error",
                    None,
                    "origin_not_allowed",
                )
                await send_json(send, 403, body)
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """Requests and errors by endpoint and status; the latency of transcriptions (429s,
    answered at once, are not latency)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            m = self.metrics
            m.requests.labels(endpoint, str(status)).inc()
            if status >= 400:
                m.errors.labels(endpoint, str(status)).inc()
            if endpoint.startswith("/v1/audio") and status != 429:
                m.latency.labels(endpoint).observe(time.perf_counter() - t0)
