"""Per-app shared state: the model manager (lazy load, share, idle unload), the job limiter
(bounded concurrency and queue) and the Prometheus metrics. Nothing here is module-global."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..engine import LoadedModel, load_model, unload_model
from ..models import MODEL_NAMES, list_models, resolve_model
from .errors import APIError
from .settings import ServerSettings

log = logging.getLogger(__name__)
OPENAI_ALIASES = ("whisper-1",)


class ModelManager:
    """Loads models on first use, shares them across requests, unloads them when idle."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._models: dict[str, LoadedModel] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def canonical(self, name: str | None) -> str:
        if not name or name in OPENAI_ALIASES:
            return self.settings.model
        return name

    def check(self, name: str | None) -> str:
        """The canonical name, or a 404 APIError when the model is not available offline."""
        model = self.canonical(name)
        if model in self._models:
            return model
        if "/" in model or "\\" in model or model.startswith("."):
            raise APIError(
                404,
                f"model {model!r} not found (paths are not accepted)",
                param="model",
                code="model_not_found",
            )
        try:
            resolve_model(model)
        except Exception as exc:
            raise APIError(
                404,
                f"model {model!r} is not available on this server: {str(exc).splitlines()[0]}",
                param="model",
                code="model_not_found",
            ) from exc
        return model

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            loaded = self._models.get(name)
            if loaded is None:
                s = self.settings
                loaded = load_model(
                    name, device=s.device, compute_type=s.compute_type, cpu_threads=s.threads
                )
                self._models[name] = loaded
            self._last_used[name] = time.monotonic()
            return loaded

    def touch(self, name: str) -> None:
        self._last_used[name] = time.monotonic()

    def loaded(self) -> list[str]:
        return sorted(self._models)

    def unload_idle(self, idle_s: float, busy: bool) -> list[str]:
        if idle_s <= 0 or busy:
            return []
        now = time.monotonic()
        dropped = []
        with self._lock:
            for name in list(self._models):
                if now - self._last_used.get(name, now) >= idle_s:
                    unload_model(self._models.pop(name))
                    dropped.append(name)
        for name in dropped:
            log.info("unloaded idle model %s", name)
        return dropped

    def available(self) -> list[str]:
        names = {r.name for r in list_models() if r.status in ("bundled", "user", "cached")}
        return sorted(names | set(self._models), key=lambda n: (n not in MODEL_NAMES, n))


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "malsori_requests_total", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "malsori_errors_total", "Requests answered 4xx/5xx", ["endpoint", "status"], registry=r
        )
        self.audio_seconds = Counter(
            "malsori_audio_seconds_total", "Seconds of audio transcribed", registry=r
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
