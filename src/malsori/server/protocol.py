"""uvicorn's HTTP/1.1 protocol (h11) with the limits it lacks, each answered with an
OpenAI-shaped JSON error where an answer is possible:

- a connection cap (``max_connections``) and, on a server bound to a public address, a cap
  per client address (``max_connections_per_client``): one client cannot take every
  connection; connections beyond either are answered 503 and closed, except a few
  (``PROBE_RESERVE``) past the total cap that still answer /health and /ready;
- a header timeout: a connection that has not sent a whole request head within
  ``header_timeout_s`` is closed, before its first request and between keep-alive requests
  (408 when it had sent part of a head);
- a body the application did not read (a GET that declares one, a refused upload) ends the
  connection once the response is sent: a client trickling such a body kept its
  connection forever, past every timeout (each byte restarted the keep-alive timer);
- h11's own 400s (a bad Content-Length, two Host headers, ...) are JSON, not uvicorn's
  plain text.

The time for a body the application reads is limited by uploads.BodyLimits."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import error_body
from .settings import ServerSettings

log = logging.getLogger(__name__)

#: At most one warning about refused connections per this many seconds (a flood of them
#: would otherwise flood the log).
_REFUSAL_LOG_EVERY_S = 10.0
#: Connections past ``max_connections`` still taken, for health probes only: clients that
#: hold every connection (slow uploads, a flood) made /health time out, and a load balancer
#: or an orchestrator then took a busy server for a dead one and restarted it.
PROBE_RESERVE = 4
PROBE_PATHS = frozenset({"/health", "/ready"})
_BUSY = "the server has too many open connections; try again shortly"


def error_response(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response with an OpenAI-shaped JSON error, closing the connection
    (``extra``: more header lines, each ending in CRLF)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = json.dumps(error_body(message, kind, None, code)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + body


#: What the WebSocket library parses again after h11 (websockets: a line of at most 8192
#: bytes, at most 128 headers); a head beyond these is refused here, with an answer.
_WS_MAX_LINE = 8190
_WS_MAX_HEADERS = 100


def websocket_refusal(event: h11.Request) -> tuple[int, str, str, str, str] | None:
    """Why a WebSocket upgrade request cannot be handed to the WebSocket layer, as
    (status, reason, code, message, extra headers); None when it can. Handed over anyway,
    a head too long for that layer, too many headers or a POST got no answer at all and its
    connection stayed open past every timeout (100 of them took every connection: a hostile
    tester); a missing key or another version got a plain-text 400."""
    headers = {name.lower(): value for name, value in event.headers}
    for once in (b"sec-websocket-key", b"sec-websocket-version"):
        if sum(1 for name, _ in event.headers if name.lower() == once) > 1:
            return (400, "Bad Request", "invalid_websocket_handshake",
                    f"{once.decode()} is given more than once", "")  # fmt: skip
    if event.method != b"GET":
        return (405, "Method Not Allowed", "method_not_allowed",
                "a WebSocket handshake is a GET request", "allow: GET\r\n")  # fmt: skip
    if len(event.method) + len(event.target) + 11 > _WS_MAX_LINE:
        return (414, "URI Too Long", "uri_too_long",
                f"the request line is over {_WS_MAX_LINE} bytes", "")  # fmt: skip
    if len(event.headers) > _WS_MAX_HEADERS:
        return (431, "Request Header Fields Too Large", "too_many_headers",
                f"more than {_WS_MAX_HEADERS} header lines", "")  # fmt: skip
    if any(len(name) + len(value) + 2 > _WS_MAX_LINE for name, value in event.headers):
        return (431, "Request Header Fields Too Large", "header_too_large",
                f"a header line is over {_WS_MAX_LINE} bytes", "")  # fmt: skip
    if headers.get(b"sec-websocket-version", b"").strip() != b"13":
        return (426, "Upgrade Required", "unsupported_websocket_version",
                "this server speaks WebSocket version 13 (Sec-WebSocket-Version: 13)",
                "sec-websocket-version: 13\r\n")  # fmt: skip
    key = headers.get(b"sec-websocket-key", b"").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid_key = False
    if not valid_key:
        return (400, "Bad Request", "invalid_websocket_handshake",
                "the WebSocket handshake needs a Sec-WebSocket-Key of 16 base64-encoded "
                "bytes", "")  # fmt: skip
    return None


def probes_only(app: Any) -> Any:
    """``app`` for a connection taken from the probe reserve: /health and /ready are
    answered; anything else gets the 503 that a connection over the cap gets."""
    body = json.dumps(error_body(_BUSY, "server_error", None, "too_many_connections")).encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in PROBE_PATHS:
            await app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return guarded


def _loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: served to whoever resolves it


def _client_host(connection: object) -> str | None:
    client = getattr(connection, "client", None)
    return str(client[0]) if isinstance(client, tuple) and client else None


def guarded_protocol(settings: ServerSettings) -> type[asyncio.Protocol]:
    header_timeout = settings.header_timeout_s
    max_connections = settings.max_connections
    # Bound to a loopback address, every client is local or a local reverse proxy (whose
    # clients all share its address): only the total cap applies.
    per_client = None if _loopback(settings.host) else settings.max_connections_per_client
    refused = {"count": 0, "logged_at": 0.0}

    def note_refusal(why: str) -> None:
        refused["count"] += 1
        now = time.monotonic()
        if now - refused["logged_at"] >= _REFUSAL_LOG_EVERY_S:
            log.warning(
                "connection(s) refused: %s (%d since the last warning)", why, refused["count"]
            )
            refused["count"], refused["logged_at"] = 0, now

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        probes_only = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            why = None
            over = len(self.connections) - max_connections
            if over > PROBE_RESERVE:
                why = f"{len(self.connections) - 1} connections open"
            elif per_client is not None and self.client is not None:
                host = self.client[0]
                mine = sum(1 for c in self.connections if _client_host(c) == host)
                if mine > per_client:
                    why = f"{mine - 1} connections open from one client"
            if why is None and over > 0:  # from the reserve: health probes only
                self.app = probes_only(self.app)
                self.probes_only = True
            if why is not None:
                note_refusal(why)
                transport.write(
                    error_response(503, "Service Unavailable", "too_many_connections", _BUSY)
                )
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection that sent no request head in %gs", header_timeout)
                if self.conn.trailing_data[0] and self.conn.our_state is h11.IDLE:
                    self.transport.write(  # part of a head arrived: say why
                        error_response(
                            408,
                            "Request Timeout",
                            "request_timeout",
                            f"the request's headers did not arrive within {header_timeout:g} s",
                        )
                    )
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def send_400_response(self, msg: str) -> None:
            if (
                self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)
                and not self.transport.is_closing()
            ):
                self.transport.write(
                    error_response(
                        400, "Bad Request", "invalid_http_request", f"invalid HTTP request: {msg}"
                    )
                )
            self.transport.close()

        def on_response_complete(self) -> None:
            # asked before uvicorn starts the next (pipelined) request's cycle
            unread = self.conn.their_state is h11.SEND_BODY
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if unread:  # answered before the client finished sending a body nobody reads
                self.transport.close()
                return
            self._arm()  # the next request's head, on a kept-alive connection

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            refusal = websocket_refusal(event)
            if self.probes_only:
                refusal = (503, "Service Unavailable", "too_many_connections", _BUSY, "")
            if refusal is not None:
                status, reason, code, message, extra = refusal
                self.transport.write(error_response(status, reason, code, message, extra))
                self.transport.close()
                return
            try:
                super().handle_websocket_upgrade(event)
            except Exception:  # the WebSocket layer could not take it: answer, never hang
                log.warning("a WebSocket upgrade failed", exc_info=True)
                if not self.transport.is_closing():
                    self.transport.write(
                        error_response(
                            400,
                            "Bad Request",
                            "invalid_websocket_handshake",
                            "the WebSocket handshake could not be read",
                        )
                    )
                    self.transport.close()
                return
            # A backstop: a handshake the application has not answered in header_timeout_s
            # (it answers at once) does not keep its connection.
            protocol = self.transport.get_protocol()
            transport = self.transport

            def unanswered() -> None:
                if not getattr(protocol, "handshake_complete", True) and not (
                    transport.is_closing()
                ):
                    log.info("closing a WebSocket handshake not answered in %gs", header_timeout)
                    transport.close()

            self.loop.call_later(header_timeout, unanswered)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


#: What a shutting-down server puts in each open live session's receive queue (read only
#: while the session's hub is closing: a client sending the same text changes nothing).
SHUTDOWN_EVENT = '{"type": "malsori.server_shutdown"}'


def graceful_websocket_protocol(on_shutdown: Callable[[], None]) -> type[asyncio.Protocol]:
    """uvicorn's WebSocket protocol (websockets' sans-I/O one, what ``ws="auto"`` picks),
    except on SIGTERM: an open live session was closed with 1012 at once, and the utterance
    being spoken, committed or not, never got its ``completed`` transcript. It is now told
    to finish (``on_shutdown``, then :data:`SHUTDOWN_EVENT` in its queue): what it received
    is transcribed and sent, then it closes with 1012 itself; the shutdown timeout
    (``MALSORI_SHUTDOWN_TIMEOUT_S``) still bounds the wait."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class GracefulWebSocketProtocol(WebSocketsSansIOProtocol):
        def shutdown(self) -> None:
            if self.handshake_complete and not self.close_sent:
                on_shutdown()
                self.stop_keepalive()
                self.queue.put_nowait({"type": "websocket.receive", "text": SHUTDOWN_EVENT})
                return
            super().shutdown()

    return GracefulWebSocketProtocol
