"""Per-app shared state: the model manager (lazy load, share, idle unload), the job limiter
(bounded concurrency and queue) and the Prometheus metrics. Nothing here is module-global."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from ..engine import CACHE, LoadedModel, load_model
from ..models import MODEL_NAMES, ModelStatus, list_models
from ..pipeline.run import release_freed_memory
from .errors import APIError
from .settings import ServerSettings

log = logging.getLogger(__name__)
OPENAI_ALIASES = ("whisper-1",)
#: ``malsori models`` statuses a client may use.
AVAILABLE = ("bundled", "user", "cached")
_LISTING_TTL_S = 10.0


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or os.sep in name or name.startswith((".", "~"))


class ModelManager:
    """Loads models on first use, shares them across requests, unloads them when idle.

    Clients may name only the models ``malsori models`` lists as available (bundled,
    user-registered, in the Hugging Face cache) or ``whisper-1`` (the default model); model
    directories only when the admin allows paths. Errors name models, never paths."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        # name -> the model as the engine's cache holds it (the cache owns the models and
        # their last-used times; this only remembers which client name loaded which)
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._listing: tuple[float, dict[str, ModelStatus]] = (-1e9, {})

    def canonical(self, name: str | None) -> str:
        if not name or name in OPENAI_ALIASES:
            return self.settings.model
        return name

    def _statuses(self) -> dict[str, ModelStatus]:
        stamp, rows = self._listing
        if time.monotonic() - stamp > _LISTING_TTL_S:
            rows = {r.name: r for r in list_models()}
            self._listing = (time.monotonic(), rows)
        return rows

    def check(self, name: str | None) -> str:
        """The canonical name, or an APIError when clients may not use that model."""
        model = self.canonical(name)
        if model in self._models or model == self.settings.model:
            return model
        if _looks_like_path(model):
            if self.settings.allow_model_paths:
                return model
            raise APIError(
                404,
                f"model {model!r} not found (paths are not accepted)",
                param="model",
                code="model_not_found",
            )
        status = self._statuses().get(model)
        if status is not None and status.status == "broken":
            raise APIError(
                503,
                f"model {model!r} is damaged on this server (its checksum does not match)",
                type="server_error",
                code="model_damaged",
            )
        if status is None or status.status not in AVAILABLE:
            raise APIError(
                404,
                f"model {model!r} is not available on this server "
                f"(available: {', '.join(self.available())})",
                param="model",
                code="model_not_found",
            )
        return model

    def _location(self, name: str) -> str:
        """What to hand to the engine: the listed directory of a listed model (so that a
        directory of the same name in the working directory is never picked up)."""
        status = self._statuses().get(name)
        if status is not None and status.status in AVAILABLE and status.path is not None:
            return str(status.path)
        return name

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            original = load_model(self.settings.engine(self._location(name)))  # cached
            self._models[name] = original
        # The engine names a model loaded from a directory by the directory.
        return replace(original, resolved=replace(original.resolved, name=name))

    def touch(self, name: str) -> None:
        loaded = self._models.get(name)
        if loaded is not None:
            CACHE.touch(loaded)

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(n for n, m in self._models.items() if CACHE.holds(m))

    def unload_idle(self, idle_s: float, busy: bool) -> list[str]:
        if idle_s <= 0 or busy:
            return []
        dropped = CACHE.drop_idle(idle_s)
        with self._lock:
            names = [n for n, m in self._models.items() if any(m is d for d in dropped)]
            for name in names:
                del self._models[name]
        for name in names:
            log.info("unloaded idle model %s", name)
        return names

    def available(self) -> list[str]:
        names = {n for n, r in self._statuses().items() if r.status in AVAILABLE}
        names |= {n for n in self._models if not _looks_like_path(n)}
        ordered = sorted(names, key=lambda n: (n not in MODEL_NAMES, n))
        return [*OPENAI_ALIASES, *ordered]


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        PlatformCollector(registry=r)
        self.requests = Counter(
            "malsori_requests_total", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "malsori_errors_total", "Requests answered 4xx/5xx", ["endpoint", "status"], registry=r
        )
        self.audio_seconds = Counter(
            "malsori_audio_seconds_total", "Seconds of audio transcribed", registry=r
        )
        self.cancelled = Counter(
            "malsori_jobs_cancelled_total",
            "Transcriptions stopped early (client_gone, timeout)",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge("malsori_queue_depth", "Requests waiting for a slot", registry=r)
        self.in_flight = Gauge("malsori_jobs_running", "Transcriptions running", registry=r)
        self.latency = Histogram(
            "malsori_request_latency_seconds",
            "Transcription request latency",
            ["endpoint"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )


class JobLimiter:
    """At most ``max_concurrent`` jobs run; at most ``max_queue`` wait; the rest get 429."""

    def __init__(self, max_concurrent: int, max_queue: int, metrics: Metrics) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_queue = max_queue
        self._waiting = 0
        self._running = 0
        self._metrics = metrics

    @property
    def busy(self) -> bool:
        return self._running > 0 or self._waiting > 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self._max_queue:
            raise APIError(
                429,
                "server busy: too many requests queued; retry later",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": "5"},
            )
        self._waiting += 1
        self._metrics.queue_depth.set(self._waiting)
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            self._metrics.queue_depth.set(self._waiting)
        self._running += 1
        self._metrics.in_flight.set(self._running)
        try:
            yield
        finally:
            self._running -= 1
            self._metrics.in_flight.set(self._running)
            self._slots.release()


def _collect_and_trim() -> None:
    gc.collect()
    release_freed_memory()


@dataclass
class AppState:
    settings: ServerSettings
    models: ModelManager
    limiter: JobLimiter
    metrics: Metrics
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: Set once the default model has been loaded at start-up (or at once without preload);
    #: an idle unload later does not make the server unready: the next request reloads it.
    ready: bool = False
    #: Clean-ups that outlive their response (a timed-out job waiting for its thread).
    background: set[asyncio.Task[None]] = field(default_factory=set)
    #: Freed memory is being given back to the system (see :meth:`give_back_memory`).
    tidying: bool = False
    tidy_again: bool = False

    async def give_back_memory(self) -> None:
        """Collect reference cycles and hand the heap glibc keeps back to the system, after
        a live session or a long request. Their buffers (decoded audio in blocks, messages
        of up to 16 MiB, features) are freed in worker threads, whose malloc arenas keep
        them: RSS rose by a request's size now and then, and live sessions left 1.1-1.8 GB
        behind. Off the event loop (``malloc_trim`` releases the GIL), one at a time."""
        if self.tidying:  # the running one goes once more for this caller's memory
            self.tidy_again = True
            return
        self.tidying = True
        try:
            while True:
                self.tidy_again = False
                await asyncio.to_thread(_collect_and_trim)
                if not self.tidy_again:
                    break
        finally:
            self.tidying = False

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background clean-up failed", exc_info=task.exception())
