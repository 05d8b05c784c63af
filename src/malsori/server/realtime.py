"""``/v1/realtime``: live transcription over a WebSocket, compatible with OpenAI's Realtime
API in transcription mode (``intent=transcription``), as speaches implements it.

Client events: ``session.update`` (GA shape, ``session.type = "transcription"``) or
``transcription_session.update`` (beta shape); ``input_audio_buffer.append`` (base64 PCM16
mono, 24 kHz as OpenAI's ``audio/pcm``, or 16 kHz with ``rate: 16000``);
``input_audio_buffer.commit`` and ``input_audio_buffer.clear``, each applied at its place
in the stream (after the audio appended before it).
Server events: ``session.created`` / ``session.updated``,
``input_audio_buffer.speech_started`` / ``speech_stopped`` (server VAD, the default),
``input_audio_buffer.committed``, ``conversation.item.input_audio_transcription.delta`` and
``.completed``, ``error``. Extensions (ignored by OpenAI's clients): a delta carries
``partial`` (the unconfirmed rest of the hypothesis) and ``lag_ms``; a completed event
carries ``start``/``end`` (session seconds), ``words`` and ``language``.

The same rules as the HTTP API: the Host and Origin checks (a cross-site page cannot open
a socket), the API key (``Authorization: Bearer``, or the ``openai-insecure-api-key.<key>``
subprotocol browsers use), the models clients may name, ``max_audio_seconds`` per session;
at most ``max_live_sessions`` at once (then an ``error`` event and close code 1013); a
session without client events for ``live_idle_timeout_s`` is closed; a client that leaves
frees its session after at most the decode in progress (its unprocessed audio is dropped)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import threading
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge, Histogram

from ..audio import SAMPLE_RATE
from ..capabilities import unsupported
from ..engine import LoadedModel
from ..errors import ModelIntegrityError, ModelLoadError, ModelNotFoundError, OptionsError
from ..live import (
    Cleared,
    LiveError,
    LiveEvent,
    LiveOptions,
    LiveSession,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TurnDetection,
    UtteranceDone,
    pcm16_to_float,
)
from ..options import normalize_language
from .errors import APIError, error_body
from .middleware import _host_name
from .protocol import SHUTDOWN_EVENT
from .state import AppState

log = logging.getLogger(__name__)

router = APIRouter()

RATES = (24000, 16000)
#: The longest ``prompt`` (UTF-8), as the HTTP API's form fields (routes.FORM_LIMITS).
MAX_PROMPT_BYTES = 64 * 1024
#: The largest client message (an append of ~4.5 min at 24 kHz, base64): a larger one gets an
#: ``error`` (``message_too_large``) and close code 1009. The server's WebSocket transport
#: allows twice this (``WS_TRANSPORT_MAX_BYTES``, ``malsori serve``), so that the error can be
#: sent; beyond that the transport closes with 1009 by itself.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: A message longer than this is parsed in a thread, after its JSON containers are counted
#: (C speed): an event has a handful (an append one, a session.update with a 64 KiB prompt
#: a few). A 16 MB message of nested empty lists (16 KB on the wire with permessage-deflate)
#: took 2.3 s of ``json.loads`` on the event loop, stalling every other request, and
#: ~450 MB of memory (a hostile tester).
BIG_MESSAGE_BYTES = 64 * 1024
MAX_BIG_MESSAGE_CONTAINERS = 64
WS_TRANSPORT_MAX_BYTES = 2 * MAX_MESSAGE_BYTES
_KEY_PROTOCOL = "openai-insecure-api-key."


class LiveHub:
    """Per app: the open sessions and their metrics (in the app's registry)."""

    def __init__(self, state: AppState) -> None:
        r = state.metrics.registry
        self.active = 0
        #: the server is shutting down: open sessions finish and close (1012)
        self.closing = False
        self.open = Gauge("malsori_live_sessions_open", "Live sessions open", registry=r)
        self.sessions = Counter(
            "malsori_live_connections_total",
            "Live connections by outcome (accepted, refused_busy, refused_auth)",
            ["outcome"],
            registry=r,
        )
        self.lag = Histogram(
            "malsori_live_lag_seconds",
            "Received audio a live decode had not seen yet, per decode",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=r,
        )


def hub(app: FastAPI) -> LiveHub:
    found: LiveHub | None = getattr(app.state, "malsori_live", None)
    if found is None:
        found = LiveHub(app.state.malsori)
        app.state.malsori_live = found
    return found


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": "event_" + uuid.uuid4().hex[:20], **fields}


def _error(
    message: str,
    code: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    error = {"message": message, "type": type, "code": code, "param": param, "event_id": event_id}
    return _event("error", error=error)


def _refusal(ws: WebSocket, state: AppState) -> tuple[int, str, str] | None:
    """The RequestGuard's Host and Origin rules (middleware.py), for a WebSocket: the
    HTTP status, message and code of the refusal, or None."""
    settings = state.settings
    host = ws.headers.get("host", "").strip().lower()
    hosts = settings.trusted_hosts()
    if hosts is not None and host and _host_name(host) not in hosts:
        message = (
            "invalid Host header: this server does not answer to that name (a reverse "
            "proxy's name goes into MALSORI_ALLOWED_HOSTS)"
        )
        return 400, message, "invalid_host"
    origin = ws.headers.get("origin")
    if origin is not None:
        value = origin.strip().rstrip("/")
        origins = {o.rstrip("/") for o in settings.cors_origins}
        scheme, _, rest = value.lower().partition("://")
        own = scheme in ("http", "https") and rest == host
        if not own and value not in origins and "*" not in origins:
            message = (
                f"cross-origin WebSocket refused: origin {value!r} is not allowed (allowed "
                "origins go into MALSORI_CORS_ORIGINS)"
            )
            return 403, message, "origin_not_allowed"
    return None


def _authorized(ws: WebSocket, state: AppState) -> bool:
    key = state.settings.api_key
    if key is None:
        return True
    secret = key.get_secret_value().encode()
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret):
        return True
    for proto in ws.scope.get("subprotocols", []):
        given = proto[len(_KEY_PROTOCOL) :].encode()
        if proto.startswith(_KEY_PROTOCOL) and hmac.compare_digest(given, secret):
            return True
    return False


class Resampler:
    """PCM16 at 24 kHz (or 16 kHz) -> 16 kHz float32, keeping the filter state between
    appends (FFmpeg's resampler through PyAV)."""

    def __init__(self, rate: int) -> None:
        import av

        self.rate = rate
        self._av: Any = av
        self._resampler: Any = av.AudioResampler(format="s16", layout="mono", rate=16000)
        self._carry = b""  # half a sample left over from the last append

    def __call__(self, data: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
        # An append may end mid-sample (a client that sends what read(4096) gave): the odd
        # byte waits for the next append; dropped, it shifted every later sample by a byte.
        data, self._carry = self._carry + data, b""
        if len(data) % 2:
            data, self._carry = data[:-1], data[-1:]
        if self.rate == 16000:
            return pcm16_to_float(data)
        pcm = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        if not pcm.size:
            return np.zeros(0, dtype=np.float32)
        frame = self._av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not out:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(out).astype(np.float32) * np.float32(1 / 32768)


def _object(value: Any, param: str) -> dict[str, Any]:
    """A JSON object of the client's event (absent: empty), or a 400 naming ``param``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise APIError(400, f"{param} must be an object", param=param, code="invalid_value")
    return value


def _turn_detection(turn: Any) -> TurnDetection | None:
    """``turn_detection`` as a client sends it (null, or server_vad with its settings)."""
    param = "session.audio.input.turn_detection"
    if turn is None:
        return None
    if not isinstance(turn, dict) or turn.get("type", "server_vad") != "server_vad":
        raise APIError(400, "turn_detection must be null or {type: 'server_vad', ...}",
                       param=param, code="invalid_value")  # fmt: skip
    base = TurnDetection()
    values: dict[str, float] = {}
    for name, low, high in (("threshold", 0.0, 1.0), ("prefix_padding_ms", 0, 10_000),
                            ("silence_duration_ms", 0, 60_000)):  # fmt: skip
        value = turn.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise APIError(400, f"turn_detection.{name} must be a number from {low:g} to "
                           f"{high:g}, got {value!r}", param=f"{param}.{name}",
                           code="invalid_value")  # fmt: skip
        values[name] = value
    return TurnDetection(
        threshold=float(values.get("threshold", base.threshold)),
        prefix_padding_ms=int(values.get("prefix_padding_ms", base.prefix_padding_ms)),
        silence_duration_ms=int(values.get("silence_duration_ms", base.silence_duration_ms)),
    )


class Connection:
    def __init__(self, ws: WebSocket, state: AppState, live_hub: LiveHub) -> None:
        self.ws, self.state, self.hub = ws, state, live_hub
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.model = state.models.canonical(ws.query_params.get("model"))
        self.language: str | None = None
        self.prompt: str | None = None
        self.rate = 24000
        self.turn: TurnDetection | None = TurnDetection()
        self.session_id = "sess_" + uuid.uuid4().hex[:20]
        self.live: LiveSession | None = None
        self.resampler: Resampler | None = None
        self.stop = threading.Event()
        #: an error to send once the audio received is transcribed (the audio limit)
        self.finish_then: dict[str, Any] | None = None
        self.worker: asyncio.Future[None] | None = None
        self.last_item: str | None = None
        self.close_code = 1000

    # --- the session object, as OpenAI shows it ---------------------------------------------

    def session(self) -> dict[str, Any]:
        turn = None
        if self.turn is not None:
            turn = {
                "type": "server_vad",
                "threshold": self.turn.threshold,
                "prefix_padding_ms": self.turn.prefix_padding_ms,
                "silence_duration_ms": self.turn.silence_duration_ms,
            }
        return {
            "type": "transcription",
            "id": self.session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": {
                        "model": self.model,
                        "language": self.language,
                        "prompt": self.prompt or "",
                    },
                    "turn_detection": turn,
                    "noise_reduction": None,
                }
            },
            "include": [],
        }

    async def update(self, event: dict[str, Any]) -> None:
        """Apply a ``session.update`` / ``transcription_session.update``; APIError if bad."""
        session = event.get("session")
        if not isinstance(session, dict):
            raise APIError(400, "session.update needs a 'session' object", param="session")
        if session.get("type") == "realtime":
            raise APIError(
                400,
                "only transcription sessions are supported (session.type 'transcription')",
                param="session.type",
                code="unsupported_session_type",
            )
        audio = _object(session.get("audio"), "session.audio")
        audio_in = _object(audio.get("input"), "session.audio.input")
        fmt = audio_in.get("format", session.get("input_audio_format"))
        transcription = audio_in.get("transcription", session.get("input_audio_transcription"))
        if transcription is not None:
            transcription = _object(transcription, "session.audio.input.transcription")
        has_turn = "turn_detection" in audio_in or "turn_detection" in session
        turn = audio_in.get("turn_detection", session.get("turn_detection"))
        rate = self.rate
        if fmt is not None:
            if not isinstance(fmt, str | dict):
                raise APIError(400, "format must be an object {type, rate}",
                               param="session.audio.input.format",
                               code="unsupported_audio_format")  # fmt: skip
            kind = fmt if isinstance(fmt, str) else fmt.get("type", "audio/pcm")
            if kind not in ("audio/pcm", "pcm16"):
                raise APIError(
                    400,
                    f"input audio format {kind!r} is not supported (audio/pcm: PCM16 mono)",
                    param="session.audio.input.format",
                    code="unsupported_audio_format",
                )
            given = fmt.get("rate", 24000) if isinstance(fmt, dict) else 24000
            rate = given if isinstance(given, int) and not isinstance(given, bool) else -1
            if rate not in RATES:
                raise APIError(
                    400,
                    f"input audio rate {given!r} is not supported (24000 or 16000)",
                    param="session.audio.input.format.rate",
                    code="unsupported_audio_format",
                )
        model, language, prompt = self.model, self.language, self.prompt
        if isinstance(transcription, dict):
            if transcription.get("model"):
                model = self.state.models.check(str(transcription["model"]))
            if "language" in transcription:
                given = transcription.get("language")
                if given is not None and not isinstance(given, str):
                    raise APIError(400, f"language must be a string, got {given!r}"[:200],
                                   param="language", code="invalid_value")  # fmt: skip
                try:
                    language = normalize_language(given)
                except OptionsError as exc:
                    raise APIError(400, str(exc), param="language") from exc
            if "prompt" in transcription:
                given = transcription.get("prompt")
                if given is not None and not isinstance(given, str):
                    raise APIError(400, f"prompt must be a string, got {given!r}"[:200],
                                   param="prompt", code="invalid_value")  # fmt: skip
                if given and len(given.encode("utf-8", "surrogatepass")) > MAX_PROMPT_BYTES:
                    # as the HTTP API's form fields; Whisper reads its last 223 tokens only
                    raise APIError(400, f"prompt is over {MAX_PROMPT_BYTES // 1024} KiB",
                                   param="prompt", code="invalid_value")  # fmt: skip
                if given and not _encodable(given):
                    raise APIError(400, "prompt is not valid Unicode (a lone surrogate)",
                                   param="prompt", code="invalid_value")  # fmt: skip
                prompt = given or None
        if self.live is not None and (model != self.model or rate != self.rate):
            raise APIError(
                400,
                "the model and the audio format cannot change once audio was sent",
                param="session",
                code="session_started",
            )
        new_turn = _turn_detection(turn) if has_turn else self.turn
        if self.live is not None and has_turn and new_turn != self.turn:
            raise APIError(
                400,
                "turn_detection cannot change once audio was sent",
                param="session.audio.input.turn_detection",
                code="session_started",
            )
        if language is not None and (language != self.language or model != self.model):
            loaded = await self._load(model)  # the HTTP API's capability check, up front
            reason = unsupported(loaded.name, loaded.is_multilingual, language, "transcribe")
            if reason is not None:
                raise APIError(400, reason, param="language", code="unsupported_for_model")
        self.model, self.language, self.prompt, self.rate = model, language, prompt, rate
        self.turn = new_turn
        if self.live is not None:  # the session started: what changed applies from now on
            self.live.set_language(language)
            self.live.set_prompt(prompt)

    # --- events out ---------------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        self.outbox.put_nowait(event)

    def emit(self, event: LiveEvent) -> None:
        """From the decoding thread: queue the event for the sender."""
        self.loop.call_soon_threadsafe(self._emit, event)

    def _emit(self, event: LiveEvent) -> None:
        vad = self.turn is not None
        if isinstance(event, SpeechStarted):
            if vad:
                start_ms = round(event.start * 1000)
                self.send(_event("input_audio_buffer.speech_started",
                                 audio_start_ms=start_ms, item_id=event.item))  # fmt: skip
        elif isinstance(event, TextDelta):
            self.hub.lag.observe(event.lag)
            self.send(_event("conversation.item.input_audio_transcription.delta",
                             item_id=event.item, content_index=0, delta=event.text,
                             partial=event.partial, lag_ms=round(event.lag * 1000)))  # fmt: skip
        elif isinstance(event, SpeechStopped):
            if vad:
                end_ms = round(event.end * 1000)
                self.send(_event("input_audio_buffer.speech_stopped",
                                 audio_end_ms=end_ms, item_id=event.item))  # fmt: skip
            self.send(_event("input_audio_buffer.committed", item_id=event.item,
                             previous_item_id=self.last_item))  # fmt: skip
            self.last_item = event.item
        elif isinstance(event, UtteranceDone):
            words = [
                {"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
                 "probability": round(w.probability, 4)}
                for w in event.words
            ]  # fmt: skip
            seconds = max(0.0, event.end - event.start)
            self.send(_event("conversation.item.input_audio_transcription.completed",
                             item_id=event.item, content_index=0, transcript=event.text,
                             usage={"type": "duration", "seconds": round(seconds, 3)},
                             language=event.language, start=round(event.start, 3),
                             end=round(event.end, 3), words=words))  # fmt: skip
        elif isinstance(event, LiveError):
            self.send(_error(event.message, event.code))
        elif isinstance(event, Cleared):
            self.send(_event("input_audio_buffer.cleared"))

    async def sender(self) -> None:
        while (event := await self.outbox.get()) is not None:
            text = json.dumps(event, ensure_ascii=False)
            if not _encodable(text):  # a lone surrogate echoed back (an event_id): escaped
                text = json.dumps(event)
            try:
                await self.ws.send_text(text)
            except Exception:  # the client is gone: the receive loop ends the session
                return

    # --- the decoding thread ------------------------------------------------------------------

    async def _load(self, model: str) -> LoadedModel:
        try:
            return await asyncio.to_thread(self.state.models.get, model)
        except (ModelIntegrityError, ModelLoadError):
            raise APIError(
                503, f"model {model!r} is damaged on this server and could not be loaded",
                type="server_error", code="model_damaged",
            ) from None  # fmt: skip
        except ModelNotFoundError:
            raise APIError(
                404, f"model {model!r} is not available on this server",
                param="model", code="model_not_found",
            ) from None  # fmt: skip

    async def start(self) -> LiveSession:
        loaded = await self._load(self.model)
        reason = unsupported(loaded.name, loaded.is_multilingual, self.language, "transcribe")
        if reason is not None:
            raise APIError(400, reason, param="language", code="unsupported_for_model")
        options = LiveOptions(
            language=self.language, prompt=self.prompt, turn=self.turn or TurnDetection()
        )
        model = self.model
        live = LiveSession(
            loaded, options, self.emit, on_decode=lambda: self.state.models.touch(model)
        )
        self.resampler = Resampler(self.rate)
        self.worker = asyncio.ensure_future(asyncio.to_thread(self._work, live))
        self.live = live
        return live

    def _work(self, live: LiveSession) -> None:
        try:
            while not self.stop.is_set() and not live.aborted:
                if live.wait(0.1) and not self.stop.is_set():
                    live.process()
        except Exception as exc:  # a bug: logged, told to the client, the session ends
            log.exception("live session: decoding failed")
            error = _error(f"transcription failed: {type(exc).__name__}", "server_error",
                           type="server_error")  # fmt: skip
            self.loop.call_soon_threadsafe(self.send, error)
            self.stop.set()

    # --- the connection -----------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> bool:
        """One client event; False ends the session."""
        kind = event.get("type")
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            if kind == "input_audio_buffer.append":
                return await self.append(event)
            if kind == "input_audio_buffer.commit":
                if self.live is None:
                    raise APIError(
                        400, "no audio to commit", code="input_audio_buffer_commit_empty"
                    )
                self.live.commit()
            elif kind == "input_audio_buffer.clear":
                if self.live is not None:  # the uncommitted audio is dropped, not transcribed;
                    self.live.clear()  # cleared is said in order, after a commit's committed
                else:
                    self.send(_event("input_audio_buffer.cleared"))
            elif kind in ("session.update", "transcription_session.update"):
                await self.update(event)
                name = "session.updated" if kind == "session.update" else kind.replace(
                    "update", "updated")  # fmt: skip
                self.send(_event(name, session=self.session()))
            else:
                raise APIError(
                    400, f"event type {kind!r} is not supported by this transcription server",
                    param="type", code="unsupported_event",
                )  # fmt: skip
        except APIError as exc:
            self.send(_error(exc.message, exc.code or "invalid_request", type=exc.type,
                             param=exc.param, event_id=event_id))  # fmt: skip
            return exc.status < 500 or exc.code != "model_damaged"
        except Exception as exc:  # a bug: said to the client and logged, the session goes on
            log.exception("live session: event %r failed", kind)
            self.send(_error(f"internal error handling {str(kind)[:50]!r}: {type(exc).__name__}",
                             "server_error", type="server_error", event_id=event_id))  # fmt: skip
        return True

    async def append(self, event: dict[str, Any]) -> bool:
        if not isinstance(event.get("audio"), str):
            raise APIError(400, "input_audio_buffer.append needs 'audio' (base64 PCM16)",
                           param="audio", code="invalid_audio")  # fmt: skip
        try:
            data = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise APIError(400, "audio must be base64-encoded PCM16", param="audio",
                           code="invalid_audio") from None  # fmt: skip
        if self.live is None:
            try:
                await self.start()
            except APIError as exc:  # one error, then the session ends (not one per append)
                self.send(_error(exc.message, exc.code or "invalid_request", type=exc.type,
                                 param=exc.param))  # fmt: skip
                return False
            except Exception as exc:  # a bug (or out of memory): once, not again per append
                log.exception("live session: the session could not start")
                self.send(_error(f"the session could not start: {type(exc).__name__}",
                                 "server_error", type="server_error"))  # fmt: skip
                self.close_code = 1011
                return False
        live = self.live
        assert live is not None and self.resampler is not None
        samples = self.resampler(data)
        limit = self.state.settings.max_audio_seconds
        room = max(0, round((limit - live.received_seconds) * SAMPLE_RATE))
        live.feed(samples[:room])
        if len(samples) > room:
            # The audio up to the limit is transcribed (the session is finished, not
            # dropped), then the refusal is said and the socket closed with 1008.
            self.finish_then = _error(
                f"this server accepts at most {limit:g} s of audio per session: the audio "
                "up to that point is transcribed, the rest is not", "audio_too_long")  # fmt: skip
            self.close_code = 1008
            return False
        # Audio received but not yet transcribed (a client sending faster than the session
        # decodes) is bounded (MALSORI_LIVE_MAX_BACKLOG_S): two clients that sent 2 hours at
        # once took the server to 2.9 GB before any bound.
        backlog = self.state.settings.live_max_backlog_s
        if live.backlog_seconds > backlog:
            self.finish_then = _error(
                f"more than {backlog:g} s of audio waits to be transcribed: send audio "
                "as it is spoken (a whole file goes to /v1/audio/transcriptions); the audio "
                "accepted up to this point is transcribed, later messages are not read",
                "backlog_too_long")  # fmt: skip
            self.close_code = 1008
            return False
        return True

    async def _abort_when_gone(self, live: LiveSession) -> None:
        """While a refused session is being finished: its client's messages are read (and
        ignored) so that a disconnect aborts the work."""
        with contextlib.suppress(Exception):
            while (await self.ws.receive())["type"] != "websocket.disconnect":
                pass
        live.abort()

    async def run(self) -> None:
        sender = asyncio.ensure_future(self.sender())
        self.send(_event("session.created", session=self.session()))
        try:
            while True:
                idle_s = self.state.settings.live_idle_timeout_s
                if self.worker is not None and self.worker.done() and self.stop.is_set():
                    self.close_code = 1011  # the decoding failed (said in an error event)
                    break
                # Every message is read at once, however far ahead the client is: a socket
                # not read from also leaves its keepalive pings unanswered, and both ends
                # closed such a session with 1011 after ~40 s (the docs' own example on a
                # long file). The backlog is bounded in append instead.
                try:
                    message = await asyncio.wait_for(self.ws.receive(), idle_s)
                except TimeoutError:
                    if self.live is not None and self.live.busy:
                        continue  # the client waits for the transcript of audio it sent
                    self.send(_error(f"no client event for {idle_s:g} s: session closed",
                                     "idle_timeout"))  # fmt: skip
                    break
                except (WebSocketDisconnect, RuntimeError, KeyError):
                    break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text == SHUTDOWN_EVENT and self.hub.closing:  # SIGTERM: finish, then go
                    notice = _error(
                        "the server is shutting down: the audio received so far is "
                        "transcribed; connect again to go on", "server_shutdown",
                        type="server_error")  # fmt: skip
                    if self.live is None:
                        self.send(notice)
                    else:
                        self.finish_then = notice
                    self.close_code = 1012
                    break
                if text is None:  # a binary frame
                    self.send(_error("binary frames are not supported: send JSON events as "
                                     "text (audio base64 in input_audio_buffer.append)",
                                     "invalid_json"))  # fmt: skip
                    continue
                if len(text) > MAX_MESSAGE_BYTES:
                    self.send(_error(
                        f"message of {len(text)} bytes: at most {MAX_MESSAGE_BYTES} bytes per "
                        "message (send long audio in several appends)",
                        "message_too_large"))  # fmt: skip
                    self.close_code = 1009
                    break
                big = len(text) > BIG_MESSAGE_BYTES
                if big and text.count("{") + text.count("[") > MAX_BIG_MESSAGE_CONTAINERS:
                    self.send(_error(
                        f"a message over {BIG_MESSAGE_BYTES // 1024} KiB with more than "
                        f"{MAX_BIG_MESSAGE_CONTAINERS} JSON objects or arrays is no event "
                        "(audio goes in input_audio_buffer.append as one base64 string)",
                        "invalid_json"))  # fmt: skip
                    continue
                try:
                    event = await asyncio.to_thread(json.loads, text) if big else json.loads(text)
                    if not isinstance(event, dict):
                        raise ValueError
                except (ValueError, RecursionError):  # RecursionError: [[[[...]]]] nested deep
                    self.send(_error("each message must be one JSON event", "invalid_json"))
                    continue
                if not await self.handle(event):
                    break
        finally:
            self.stop.set()
            finishing = self.finish_then is not None and self.live is not None
            if self.live is not None and not finishing:
                self.live.abort()  # queued audio is not decoded for a client that left
            if self.worker is not None:  # at most one decode (~1 s) to wait for
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.worker)
            if finishing and self.live is not None and self.finish_then is not None:
                # what was received is transcribed, unless the client leaves meanwhile
                watcher = asyncio.ensure_future(self._abort_when_gone(self.live))
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.to_thread(self.live.finish))
                watcher.cancel()
                self.send(self.finish_then)
            if self.live is not None:
                self.state.metrics.audio_seconds.inc(self.live.received_seconds)
            self.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)
            with contextlib.suppress(Exception):
                await self.ws.close(code=self.close_code)


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.malsori
    live_hub = hub(websocket.app)
    refusal = _refusal(websocket, state)
    if refusal is not None:
        log.info("live session refused: %s", refusal[1])
        await _deny(websocket, *refusal)
        return
    offered = websocket.scope.get("subprotocols", [])
    # A browser that offered subprotocols fails the handshake unless one is chosen: the
    # key-only offer (openai-insecure-api-key.<key>) gets that one back. One the server does
    # not speak is never chosen (any first offer, 5000 characters of it, was echoed back).
    spoken = ("realtime", "openai-beta.realtime-v1")  # the beta clients' name for it
    chosen = next((p for p in spoken if p in offered), None) or next(
        (p for p in offered if p.startswith(_KEY_PROTOCOL)), None
    )
    await websocket.accept(subprotocol=chosen)
    if not _authorized(websocket, state):
        live_hub.sessions.labels("refused_auth").inc()
        await websocket.send_text(json.dumps(_error(
            "invalid or missing API key (send 'Authorization: Bearer <key>')",
            "invalid_api_key", type="authentication_error")))  # fmt: skip
        await websocket.close(code=1008)
        return
    limit = state.settings.max_live_sessions
    if live_hub.active >= limit:
        live_hub.sessions.labels("refused_busy").inc()
        await websocket.send_text(json.dumps(_error(
            f"server busy: {limit} live session(s) already open; retry later",
            "too_many_sessions", type="rate_limit_error")))  # fmt: skip
        await websocket.close(code=1013)
        return
    try:
        model_name = websocket.query_params.get("model")
        state.models.check(model_name)
    except APIError as exc:
        await websocket.send_text(json.dumps(_error(exc.message, exc.code or "model_not_found",
                                                    param="model")))  # fmt: skip
        await websocket.close(code=1008)
        return
    live_hub.active += 1
    live_hub.open.set(live_hub.active)
    live_hub.sessions.labels("accepted").inc()
    try:
        await Connection(websocket, state, live_hub).run()
    finally:
        live_hub.active -= 1
        live_hub.open.set(live_hub.active)
        # A session's objects are in reference cycles (callbacks, threads), freed only when
        # the cyclic collector ran: collected and given back now.
        await state.give_back_memory()


async def _deny(websocket: WebSocket, status: int, message: str, code: str) -> None:
    """Refuse a handshake with an HTTP answer whose body says why (the JSON error of the
    HTTP API), where the server can send one (uvicorn can); else a bare 403."""
    body = error_body(message, "invalid_request_error", code=code)
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
    except RuntimeError:  # no "websocket.http.response" extension
        await websocket.close(code=1008)


@router.get("/v1/realtime", include_in_schema=False)
async def realtime_over_http() -> JSONResponse:
    """A plain HTTP request to the WebSocket's path: 426 saying how to connect (it was a
    404 "Not Found", which sent an integrator looking for a missing route)."""
    body = error_body(
        "/v1/realtime is a WebSocket: connect with ws:// (or wss://) and an Upgrade "
        "handshake, e.g. the openai client's realtime.connect()",
        "invalid_request_error",
        code="upgrade_required",
    )
    return JSONResponse(body, status_code=426, headers={"Upgrade": "websocket"})


@router.websocket("/{path:path}")
async def no_websocket_here(websocket: WebSocket, path: str) -> None:
    """A WebSocket handshake on any other path: 404 with a JSON body naming the one path
    that takes WebSockets (it was a bare 403)."""
    await _deny(
        websocket, 404, f"no WebSocket at /{path[:100]}: live transcription is at /v1/realtime",
        "not_found",
    )  # fmt: skip


def _encodable(text: str) -> bool:
    """Can ``text`` be sent as UTF-8 (no lone surrogate, which JSON can carry)?"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
