"""uvicorn's HTTP/1.1 protocol (h11) with the limits it lacks: a connection cap (connections
beyond ``max_connections`` are closed at once) and a header timeout (a connection that has
not sent a whole request head within ``header_timeout_s`` is closed, before its first
request and between keep-alive requests; one that sent part of a head is told why first,
with a 408 and an OpenAI-shaped JSON error). Body time is limited by uploads.BodyLimits."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings

log = logging.getLogger(__name__)


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": f"the request's headers did not arrive within {seconds:g} s",
                "type": "invalid_request_error",
                "param": None,
                "code": "request_timeout",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(settings: ServerSettings) -> type[asyncio.Protocol]:
    header_timeout = settings.header_timeout_s
    max_connections = settings.max_connections

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("connection refused: %d connections open", len(self.connections))
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
                    self.transport.write(_timeout_response(header_timeout))  # part of a head
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's head, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
