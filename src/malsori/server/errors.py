"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers


#: Messages quote what the client sent (a model name, a language); a 10,000-character value
#: is not echoed back whole.
MAX_MESSAGE_CHARS = 500


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return JSONResponse(
        error_body(exc.message, exc.type, exc.param, exc.code),
        status_code=exc.status,
        headers=exc.headers,
    )


#: The multipart parser's own errors (starlette's words, kept): a code, and a hint where
#: its words do not say what to do.
_TOO_LARGE_HINT = (
    " A text field is at most 64 KiB; audio goes in a file part, with a filename= (a part "
    "with only filename*= is read as text; multipart/form-data: curl -F file=@audio.wav)."
)
_FORM_ERRORS = {
    "Part exceeded maximum size": ("field_too_large", _TOO_LARGE_HINT),
    "Field exceeded maximum size": ("field_too_large", _TOO_LARGE_HINT),
    "Too many fields": ("too_many_fields", ""),
    "Too many files": ("too_many_files", ""),
    "Invalid multipart data": (
        "invalid_multipart",
        " The body could not be read as multipart/form-data: check that the boundary in "
        "Content-Type is the one the body uses, and that no part's headers are over 8 KiB "
        "(a very long file name).",
    ),
    "Missing boundary": ("invalid_multipart", ""),
}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message, code = str(exc.detail), None
    ctype = request.headers.get("content-type", "")
    if (
        exc.status_code == 400
        and message.startswith(("Too many fields", "Too many files"))
        and not ctype.lower().startswith("multipart/form-data")
    ):  # a multipart body sent as url-encoded is read as 50+ fields
        return JSONResponse(
            error_body(
                "the request body must be multipart/form-data (this one's Content-Type is "
                f"{ctype[:100] or 'missing'}), e.g. curl -F file=@audio.wav -F model=whisper-1",
                kind,
                None,
                "invalid_content_type",
            ),
            status_code=400,
        )
    for start, (form_code, hint) in _FORM_ERRORS.items():
        if exc.status_code == 400 and message.startswith(start):
            message, code = message + hint, form_code
            break
    return JSONResponse(
        error_body(message, kind, None, code),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    if first.get("type") == "missing":
        message = f"missing required parameter: {param}"
    elif param == "file":  # a text field named file (url-encoded form, or no file part)
        message = (
            "invalid value for file: expected an uploaded file (multipart/form-data, a part "
            "named file with a filename=; a part with only filename*= is read as text)"
        )
    else:
        message = f"invalid value for {param}: {first.get('msg', 'invalid request')}"
    return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body(f"internal error: {type(exc).__name__}", "server_error"), status_code=500
    )


async def send_json(
    send: Send,
    status: int,
    body: dict[str, object],
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer a JSON error straight from ASGI middleware (before any route runs); ``close``
    ends the connection too (an upload refused mid-body leaves unread bytes on it)."""
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
