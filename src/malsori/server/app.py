"""``create_app(settings)``: wires the state, the middleware, the error handlers and the
routes together. Every piece of state hangs off the app; nothing is module-global.

Request path: CloseWhenBodyUnread -> RequestGuard (Host, Origin) -> RequestMetrics -> CORS
(when configured) -> UploadKey (401) -> BodyLimits (413/408) -> the routes (routes.py),
which hand transcriptions to a Job (jobs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .errors import (
    APIError,
    api_error_handler,
    http_error_handler,
    unhandled_error_handler,
    validation_error_handler,
)
from .middleware import CloseWhenBodyUnread, RequestGuard, RequestMetrics, UploadKey
from .realtime import hub as live_hub
from .realtime import router as realtime_router
from .routes import STATIC, SWAGGER_UI, router
from .settings import ServerSettings
from .state import AppState, JobLimiter, Metrics, ModelManager
from .uploads import BodyLimits

log = logging.getLogger(__name__)


class _RefusedHandshakeNoise(logging.Filter):
    """uvicorn logs "ASGI callable returned without completing handshake." at ERROR after
    every WebSocket handshake the application refused with its own response (a wrong
    Origin, a bad key, another path: a JSON 403/401/404, already in the access log), so any
    client could fill the log with ERROR lines. Those are kept at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "ASGI callable returned without completing handshake.":
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
        return True


def _lifespan(state: AppState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings = state.settings

    async def preload() -> None:
        try:
            await asyncio.to_thread(state.models.get, state.models.canonical(None))
            state.ready = True
        except Exception as exc:  # /ready reports it; requests get the error (no paths)
            log.error("could not preload model %s: %s", settings.model, exc)

    async def reaper(app: FastAPI) -> None:
        idle = settings.model_idle_unload_s
        while True:
            await asyncio.sleep(max(1.0, min(30.0, idle / 4)))
            # An open live session (/v1/realtime) uses its model even while nobody speaks.
            live = getattr(app.state, "malsori_live", None)
            live_open = live is not None and live.active > 0
            state.models.unload_idle(idle, state.limiter.busy or live_open)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _RefusedHandshakeNoise) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_RefusedHandshakeNoise())
        if settings.preload:
            state.tasks.append(asyncio.create_task(preload()))
        else:
            state.ready = True
        if settings.model_idle_unload_s > 0:
            state.tasks.append(asyncio.create_task(reaper(app)))
        yield
        for t in state.tasks:
            t.cancel()

    return lifespan


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    metrics = Metrics()
    state = AppState(
        settings,
        ModelManager(settings),
        JobLimiter(settings.max_concurrent, settings.max_queue, metrics),
        metrics,
    )
    app = FastAPI(
        title="malsori",
        version=__version__,
        lifespan=_lifespan(state),
        description="Offline speech-to-text, compatible with OpenAI's audio API.",
        openapi_url=None,  # served by routes.py, behind the API key
        docs_url=None,
        redoc_url=None,
    )
    app.state.malsori = state
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
    # add_middleware wraps: the last one added runs first.
    app.add_middleware(BodyLimits, settings=settings)
    app.add_middleware(UploadKey, settings=settings)  # inside CORS: its 401 is readable
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Malsori-Warnings"],  # a web app may read it too
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(CloseWhenBodyUnread)  # outermost: sees every answer
    app.include_router(router)
    app.include_router(realtime_router)  # /v1/realtime: live transcription (WebSocket)
    live_hub(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")
    return app
