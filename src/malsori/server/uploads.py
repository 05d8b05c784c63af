"""Uploads: the body size and time limits (ASGI middleware, before the multipart parser sees
a byte too many) and saving the ``file`` field to a private temporary file."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, error_body, send_json
from .settings import ServerSettings

#: Room for the form's other fields on top of the file size limit.
FORM_OVERHEAD = 64 * 1024


class BodyLimits:
    """413 for a body over the upload limit (declared or, when sent chunked, counted), 408
    for one that takes longer than ``body_timeout_s`` to arrive. The app then sees the
    client as gone and everything it sends afterwards is dropped."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_upload_bytes + FORM_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, self._too_large(), close=True)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout_s
        seen, body_done, started, answered = 0, False, False, False

        async def limited_receive() -> Message:
            nonlocal seen, body_done, answered
            if answered:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                message = None
            if message is None:
                body = error_body(
                    f"the request body did not arrive within {self.settings.body_timeout_s:g} s",
                    "invalid_request_error",
                    None,
                    "request_timeout",
                )
            elif message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen <= limit:
                    return message
                body = self._too_large()
            else:
                return message
            if not started:  # nothing sent yet: answer, then tell the app the client left
                await send_json(send, 408 if message is None else 413, body, close=True)
            answered = True
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _too_large(self) -> dict[str, object]:
        mb = self.settings.max_upload_mb
        return error_body(
            f"upload too large: the limit is {mb:g} MB", "invalid_request_error", "file",
            "file_too_large",
        )  # fmt: skip


async def save_upload(upload: UploadFile, limit: int) -> Path:
    """Stream the upload into a private temp file (deleted by the caller)."""
    fd, name = tempfile.mkstemp(prefix="malsori-upload-", suffix=".bin")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise APIError(
                        413,
                        f"upload too large: the limit is {limit / 2**20:g} MB",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    if size == 0:
        os.unlink(name)
        raise APIError(400, "the uploaded file is empty", param="file", code="empty_file")
    return Path(name)


def display_name(upload: UploadFile) -> str:
    """The client's file name for messages only: never used as a path."""
    raw = upload.filename or "upload"
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch if ch.isprintable() else "?" for ch in base)[:100]
    return clean or "upload"
