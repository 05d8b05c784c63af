"""The FastAPI app: OpenAI-compatible ``/v1/audio/*`` endpoints, models, health, metrics and
the web page. ``create_app(settings)`` builds one; every piece of state hangs off it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..audio import SAMPLE_RATE, load_audio
from ..engine import check_options, transcribe
from ..errors import AudioError, OptionsError
from ..options import DecodeOptions, normalize_language
from ..transcript import Segment, Transcript
from ..writers import WRITERS, cues
from .errors import (
    APIError,
    api_error_handler,
    error_body,
    http_error_handler,
    unhandled_error_handler,
    validation_error_handler,
)
from .settings import ServerSettings
from .state import AppState, JobLimiter, Metrics, ModelManager

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
Granularity = Literal["segment", "word"]


class _Cancelled(Exception):
    pass


# --- dependencies ------------------------------------------------------------------------


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.malsori
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def require_api_key(request: Request, state: StateDep) -> None:
    key = state.settings.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), key.get_secret_value().encode()
    ):
        raise APIError(
            401,
            "invalid or missing API key (send 'Authorization: Bearer <key>')",
            type="authentication_error",
            code="invalid_api_key",
        )


# --- body size limit (413 before the multipart parser sees a byte too many) ---------------


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, get_limit: Callable[[], int]) -> None:
        self.app, self.get_limit = app, get_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        limit = self.get_limit() + 64 * 1024  # room for the form's other fields
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        mb = (limit - 64 * 1024) / 1024 / 1024
        body = json.dumps(
            error_body(
                f"upload too large: the limit is {mb:g} MB",
                "invalid_request_error",
                "file",
                "file_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# --- request handling --------------------------------------------------------------------


async def _save_upload(upload: UploadFile, limit: int) -> Path:
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


def _display_name(upload: UploadFile) -> str:
    """The client's file name for messages only: never used as a path."""
    raw = upload.filename or "upload"
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch if ch.isprintable() else "?" for ch in base)[:100]
    return clean or "upload"


def _verbose(result: Transcript, task: str, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": task,
        "language": result.language,
        "duration": round(result.duration, 3),
        "text": result.text,
        "segments": [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": s.temperature or 0.0,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in result.segments
        ],
    }
    if words:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end} for w in result.words
        ]
    return body


def _render(result: Transcript, fmt: str, task: str, words: bool) -> Response:
    if fmt == "json":
        return JSONResponse({"text": result.text})
    if fmt == "verbose_json":
        return JSONResponse(_verbose(result, task, words))
    if fmt == "text":
        return PlainTextResponse(result.text + "\n")
    media = "text/vtt" if fmt == "vtt" else "text/plain"
    return Response(WRITERS[fmt](result), media_type=f"{media}; charset=utf-8")


def _segment_event(segment: Segment) -> dict[str, Any]:
    """A streamed segment, with its subtitle cues (long batched windows split at words)."""
    one = Transcript([segment], "", 0.0, segment.end)
    return {
        "id": segment.id,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "cues": [{"start": a, "end": b, "text": t} for a, b, t in cues(one)],
    }


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def _handle(
    state: AppState,
    *,
    task: str,
    upload: UploadFile,
    model: str | None,
    language: str | None,
    prompt: str | None,
    response_format: str,
    temperature: float,
    granularities: Sequence[str],
    stream: bool,
) -> Response:
    settings = state.settings
    name = state.models.check(model)
    try:
        lang = normalize_language(language) if task == "transcribe" else None
        options = DecodeOptions(
            language=lang,
            task=task,
            beam_size=settings.beam_size,
            batch_size=settings.batch_size,
            initial_prompt=prompt or None,
            word_timestamps="word" in granularities,
            # OpenAI: 0 means "start at 0 and raise it when decoding fails" (the fallback).
            temperature=temperature if temperature > 0 else DecodeOptions.temperature,
        )
    except OptionsError as exc:
        raise APIError(400, str(exc), param="language") from exc
    if not 0 <= temperature <= 1:
        raise APIError(400, "temperature must be between 0 and 1", param="temperature")
    display = _display_name(upload)
    path = await _save_upload(upload, settings.max_upload_bytes)
    stack = contextlib.AsyncExitStack()
    try:
        stack.callback(lambda: path.unlink(missing_ok=True))
        await stack.enter_async_context(state.limiter.slot())
        loaded = await asyncio.to_thread(state.models.get, name)
        try:
            check_options(loaded, options)
        except OptionsError as exc:
            raise APIError(
                400,
                str(exc),
                param="model" if task == "translate" else "language",
                code="unsupported_for_model",
            ) from exc
        try:
            audio = await asyncio.to_thread(load_audio, path, name=display)
        except AudioError as exc:
            raise APIError(
                400, f"could not read the audio: {exc}", param="file", code="invalid_audio"
            ) from exc
        duration = len(audio) / SAMPLE_RATE
        if duration > settings.max_audio_seconds:
            raise APIError(
                400,
                f"audio is {duration:.0f} s long; this server accepts at most "
                f"{settings.max_audio_seconds:.0f} s",
                param="file",
                code="audio_too_long",
            )
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Segment | None] | None = asyncio.Queue() if stream else None

        def on_segment(segment: Segment) -> None:
            if cancel.is_set():
                raise _Cancelled
            if queue is not None:
                loop.call_soon_threadsafe(queue.put_nowait, segment)

        def run() -> Transcript:
            try:
                return transcribe(audio, loaded, options=options, on_segment=on_segment)
            finally:
                if queue is not None:
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        job = asyncio.ensure_future(asyncio.to_thread(run))

        async def finish() -> Transcript:
            try:
                result = await asyncio.wait_for(asyncio.shield(job), settings.request_timeout_s)
            except TimeoutError:
                cancel.set()
                with contextlib.suppress(_Cancelled):
                    await job
                raise APIError(
                    504,
                    f"transcription took longer than "
                    f"{settings.request_timeout_s:g} s and was stopped",
                    type="server_error",
                    code="timeout",
                ) from None
            state.metrics.audio_seconds.inc(duration)
            state.models.touch(name)
            return result

        if queue is None:
            result = await finish()
            return _render(result, response_format, task, "word" in granularities)

        owned = stack.pop_all()  # the stream now owns the slot and the temp file

        async def events() -> AsyncIterator[bytes]:
            async with owned:
                try:
                    while (segment := await queue.get()) is not None:
                        yield _sse(
                            {
                                "type": "transcript.text.delta",
                                "delta": segment.text,
                                "segment": _segment_event(segment),
                            }
                        )
                    result = await finish()
                    yield _sse(
                        {
                            "type": "transcript.text.done",
                            "text": result.text,
                            "language": result.language,
                            "duration": result.duration,
                        }
                    )
                except APIError as exc:
                    yield _sse({"type": "error", **error_body(exc.message, exc.type)})
                finally:
                    cancel.set()  # a client that went away stops the work

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    finally:
        await stack.aclose()


# --- the app -----------------------------------------------------------------------------


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    metrics = Metrics()
    state = AppState(
        settings,
        ModelManager(settings),
        JobLimiter(settings.max_concurrent, settings.max_queue, metrics),
        metrics,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def preload() -> None:
            try:
                await asyncio.to_thread(state.models.get, settings.model)
                state.ready = True
            except Exception as exc:  # /ready reports it; requests get the error
                log.error("could not preload model %s: %s", settings.model, exc)

        async def reaper() -> None:
            idle = settings.model_idle_unload_s
            while True:
                await asyncio.sleep(max(1.0, min(30.0, idle / 4)))
                state.models.unload_idle(idle, state.limiter.busy)

        if settings.preload:
            state.tasks.append(asyncio.create_task(preload()))
        else:
            state.ready = True
        if settings.model_idle_unload_s > 0:
            state.tasks.append(asyncio.create_task(reaper()))
        yield
        for t in state.tasks:
            t.cancel()

    app = FastAPI(
        title="malsori",
        version=__version__,
        lifespan=lifespan,
        description="Offline speech-to-text, compatible with OpenAI's audio API.",
    )
    app.state.malsori = state
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(BodySizeLimit, get_limit=lambda: settings.max_upload_bytes)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "other")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        if response.status_code >= 400:
            metrics.errors.labels(endpoint, str(response.status_code)).inc()
        if endpoint.startswith("/v1/audio"):
            metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
        return response

    auth = [Depends(require_api_key)]

    @app.post("/v1/audio/transcriptions", dependencies=auth, tags=["audio"])
    async def transcriptions(
        state: StateDep,
        file: Annotated[UploadFile, File(description="audio or video file")],
        model: Annotated[str, Form()] = "whisper-1",
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
        timestamp_granularities: Annotated[
            list[Granularity] | None, Form(alias="timestamp_granularities[]")
        ] = None,
        stream: Annotated[bool, Form()] = False,
    ) -> Response:
        return await _handle(
            state,
            task="transcribe",
            upload=file,
            model=model,
            language=language,
            prompt=prompt,
            response_format=response_format,
            temperature=temperature,
            granularities=timestamp_granularities or [],
            stream=stream,
        )

    @app.post("/v1/audio/translations", dependencies=auth, tags=["audio"])
    async def translations(
        state: StateDep,
        file: Annotated[UploadFile, File(description="audio or video file")],
        model: Annotated[str, Form()] = "whisper-1",
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
    ) -> Response:
        return await _handle(
            state,
            task="translate",
            upload=file,
            model=model,
            language=None,
            prompt=prompt,
            response_format=response_format,
            temperature=temperature,
            granularities=[],
            stream=False,
        )

    def _model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "malsori"}

    @app.get("/v1/models", dependencies=auth, tags=["models"])
    async def models(state: StateDep) -> dict[str, Any]:
        names = await asyncio.to_thread(state.models.available)
        return {"object": "list", "data": [_model_card(n) for n in names]}

    @app.get("/v1/models/{model_id}", dependencies=auth, tags=["models"])
    async def model(model_id: str, state: StateDep) -> dict[str, Any]:
        if model_id in ("whisper-1",):
            return _model_card(model_id)
        names = await asyncio.to_thread(state.models.available)
        if model_id not in names:
            raise APIError(
                404, f"model {model_id!r} not found", param="model", code="model_not_found"
            )
        return _model_card(model_id)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready(state: StateDep) -> JSONResponse:
        return JSONResponse(
            {"status": "ready" if state.ready else "loading", "models": state.models.loaded()},
            status_code=200 if state.ready else 503,
        )

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
