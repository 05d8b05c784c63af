"""The endpoints: OpenAI's ``/v1/audio/*`` and ``/v1/models``, the schema, health,
readiness, metrics and the web page.

Which need the API key (when ``MALSORI_API_KEY`` is set): ``/v1/*``, ``/metrics`` and
``/openapi.json``. Open: ``/health`` and ``/ready`` (probes), the page at ``/`` and its
``/static`` files (the page asks for the key), and ``/docs`` (its schema request needs the
key; Swagger UI's files are served from the fastapi-offline package at ``/docs-assets``,
never from a CDN: the server works offline)."""

from __future__ import annotations

import asyncio
import importlib.resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..diarize import DiarizeOptions
from .deps import AudioRequest, Authorized, StateDep
from .errors import APIError
from .jobs import JobRequest, run_request
from .state import OPENAI_ALIASES

STATIC = Path(__file__).resolve().parent / "static"
#: Swagger UI 5's JavaScript and CSS (OpenAPI 3.1, which FastAPI writes), shipped by the
#: fastapi-offline package: FastAPI's default /docs page loads them from a CDN, which
#: leaves it blank on an offline machine. Only its files are used, not its FastAPI subclass.
SWAGGER_UI = Path(str(importlib.resources.files("fastapi_offline") / "static"))
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]


#: The form's text fields are a few short values (the longest, ``prompt``, is 224 tokens at
#: OpenAI): at most 64 KiB each and 50 of them. Starlette's defaults (1 MiB, 1000 fields)
#: let one connection hold 25 MB of text in memory until its body timeout.
class FormLimits(TypedDict, total=False):
    """FastAPI's ``form_limits`` of a route (the keys it reads)."""

    max_fields: int
    max_files: int
    max_part_size: int


FORM_LIMITS: FormLimits = {"max_fields": 50, "max_files": 4, "max_part_size": 64 * 1024}

router = APIRouter()


@router.post(
    "/v1/audio/transcriptions", dependencies=AudioRequest, tags=["audio"], form_limits=FORM_LIMITS
)
async def transcriptions(
    state: StateDep,
    request: Request,
    file: Annotated[UploadFile, File(description="audio or video file")],
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form()] = 0.0,
    timestamp_granularities: Annotated[
        list[Granularity] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    granularities_unbracketed: Annotated[
        list[Granularity] | None,
        Form(alias="timestamp_granularities", description="the same, sent without []"),
    ] = None,
    stream: Annotated[bool, Form()] = False,
    diarize: Annotated[
        bool,
        Form(
            description="malsori extension: label speakers (SPEAKER_1, ...) in every format; "
            "response_format=diarized_json implies it"
        ),
    ] = False,
    num_speakers: Annotated[int | None, Form(description="with diarize: exactly N")] = None,
    min_speakers: Annotated[int | None, Form(description="with diarize")] = None,
    max_speakers: Annotated[int | None, Form(description="with diarize")] = None,
) -> Response:
    granularities = tuple(
        dict.fromkeys([*(timestamp_granularities or ()), *(granularities_unbracketed or ())])
    )
    counts = {
        "num_speakers": num_speakers,
        "min_speakers": min_speakers,
        "max_speakers": max_speakers,
    }
    speakers = None
    if diarize or response_format == "diarized_json":
        speakers = DiarizeOptions(
            num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers
        )
    else:
        _refuse_speaker_counts(counts, "need diarize=true")
    req = JobRequest(
        "transcribe",
        model,
        language,
        prompt,
        response_format,
        temperature,
        granularities,
        stream,
        speakers,
    )
    return await run_request(state, request, file, req)


@router.post(
    "/v1/audio/translations", dependencies=AudioRequest, tags=["audio"], form_limits=FORM_LIMITS
)
async def translations(
    state: StateDep,
    request: Request,
    file: Annotated[UploadFile, File(description="audio or video file")],
    model: Annotated[str, Form()] = "whisper-1",
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form()] = 0.0,
    timestamp_granularities: Annotated[
        list[Granularity] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    granularities_unbracketed: Annotated[
        list[Granularity] | None,
        Form(alias="timestamp_granularities", description="the same, sent without []"),
    ] = None,
    stream: Annotated[
        bool, Form(description="malsori extension: server-sent events, as for transcriptions")
    ] = False,
    diarize: Annotated[
        bool, Form(description="not supported for translations (a 400): use transcriptions")
    ] = False,
    num_speakers: Annotated[int | None, Form(description="not supported")] = None,
    min_speakers: Annotated[int | None, Form(description="not supported")] = None,
    max_speakers: Annotated[int | None, Form(description="not supported")] = None,
) -> Response:
    if diarize:
        raise APIError(
            400,
            "diarize is not supported for translations: ask /v1/audio/transcriptions",
            param="diarize",
        )
    if response_format == "diarized_json":
        raise APIError(
            400,
            "diarized_json is for transcriptions (/v1/audio/transcriptions)",
            param="response_format",
        )
    counts = {
        "num_speakers": num_speakers,
        "min_speakers": min_speakers,
        "max_speakers": max_speakers,
    }
    _refuse_speaker_counts(counts, "are not supported for translations")
    granularities = tuple(
        dict.fromkeys([*(timestamp_granularities or ()), *(granularities_unbracketed or ())])
    )
    req = JobRequest(
        "translate", model, None, prompt, response_format, temperature, granularities, stream
    )
    return await run_request(state, request, file, req)


def _refuse_speaker_counts(counts: dict[str, int | None], why: str) -> None:
    """A 400 naming the first speaker-count field that was given where it cannot apply."""
    given = [name for name, value in counts.items() if value is not None]
    if given:
        raise APIError(400, f"{', '.join(given)} {why}", param=given[0])


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "malsori"}


@router.get("/v1/models", dependencies=Authorized, tags=["models"])
@router.head("/v1/models", dependencies=Authorized, include_in_schema=False)
async def models(state: StateDep) -> dict[str, Any]:
    names = await asyncio.to_thread(state.models.available)
    return {"object": "list", "data": [_model_card(n) for n in names]}


@router.get("/v1/models/{model_id}", dependencies=Authorized, tags=["models"])
@router.head("/v1/models/{model_id}", dependencies=Authorized, include_in_schema=False)
async def model(model_id: str, state: StateDep) -> dict[str, Any]:
    if model_id in OPENAI_ALIASES:
        return _model_card(model_id)
    names = await asyncio.to_thread(state.models.available)
    if model_id not in names:
        raise APIError(404, f"model {model_id!r} not found", param="model", code="model_not_found")
    return _model_card(model_id)


@router.get("/health", tags=["ops"])
@router.head("/health", include_in_schema=False)  # monitors send HEAD: every GET has one
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", tags=["ops"])
@router.head("/ready", include_in_schema=False)
async def ready(state: StateDep) -> JSONResponse:
    return JSONResponse(
        {"status": "ready" if state.ready else "loading", "models": state.models.loaded()},
        status_code=200 if state.ready else 503,
    )


@router.get("/metrics", dependencies=Authorized, tags=["ops"])
@router.head("/metrics", dependencies=Authorized, include_in_schema=False)
async def prometheus(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", dependencies=Authorized, include_in_schema=False)
@router.head("/openapi.json", dependencies=Authorized, include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
@router.head("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon.png",
    )


# one route for both (uptime monitors send HEAD): a 405 then says "allow: GET, HEAD"
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=page_headers(request))


def page_headers(request: Request) -> dict[str, str]:
    """The page loads only its own scripts, styles, worklet and WebSocket, and may not be
    framed by another site (a transcribe button under someone else's page). Its own socket
    is named too (``ws://HOST``): Safari before 15.4 did not count it as 'self'. The Host
    has passed the server's Host check by now."""
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if host and all(c not in host for c in " ;,'") else ""
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
            f"connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # not no-referrer: some browsers then sent "Origin: null", which the Origin check
        # refuses; same-origin still sends nothing to other sites
        "Referrer-Policy": "same-origin",
    }
