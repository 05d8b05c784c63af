"""One options object for decoding, shared by the Python API, the CLI, batch and the server.

Only the settings users actually change live here; every other faster-whisper keyword can
still be passed through ``extra``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import OptionsError

TASKS = ("transcribe", "translate")
#: ``malsori``: malsori's own long-form pipeline (src/malsori/pipeline, docs/pipeline.md);
#: ``faster-whisper``: faster-whisper's BatchedInferencePipeline. ``batch_size=1`` is always
#: faster-whisper's sequential decoding.
PIPELINES = ("malsori", "faster-whisper")


def language_codes() -> tuple[str, ...]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


#: Common ways to name a language that are not Whisper's code: the error says which code.
_LIKELY: dict[str, str] = {
    "kr": "ko", "kor": "ko", "korean": "ko", "한국어": "ko",
    "eng": "en", "english": "en", "jp": "ja", "jpn": "ja", "japanese": "ja",
    "cn": "zh", "chi": "zh", "zho": "zh", "chinese": "zh",
}  # fmt: skip


def normalize_language(language: str | None) -> str | None:
    """``None``/"auto" -> None (detect); a known code -> itself; a BCP 47 tag whose primary
    subtag is a known code (``ko-KR``, ``en_US``) -> that code; otherwise OptionsError
    (naming the code when the input is a common other name for it: ``kr``, ``korean``)."""
    if language is None or language.strip().lower() in ("", "auto"):
        return None
    code = language.strip().lower()
    primary = code.replace("_", "-").split("-")[0]
    if code not in language_codes() and primary in language_codes():
        code = primary
    if code not in language_codes():
        likely = _LIKELY.get(code) or _LIKELY.get(primary)
        hint = f"did you mean {likely!r}? " if likely else ""
        raise OptionsError(
            f"unknown language code {language!r}; {hint}use 'auto' or one of the Whisper "
            "codes (en, ko, ja, zh, de, fr, es, ...)"
        )
    return code


#: The widest beam (and best_of): beyond a few the accuracy stops changing and the memory
#: does not (docs/pipeline.md).
MAX_BEAM = 16
#: The most windows decoded together.
MAX_BATCH = 64


def _check_int(name: str, value: Any, low: int, high: int, note: str = "") -> None:
    # numbers.Integral: NumPy's integers too (a sweep over np.arange)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionsError(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise OptionsError(f"{name} must be from {max(low, 1)} to {high}{note}, got {value}")


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings; the defaults are malsori's default configuration.

    ``pipeline="malsori"`` (default) is malsori's own long-form pipeline (docs/pipeline.md):
    audio streamed in blocks, Silero VAD, windows of up to 30 s decoded ``batch_size`` at a
    time (at most 6 per decoder call), the language detected per window when not given,
    greedy decoding with beam 5 for Korean (``beam_size=0``, automatic), and Whisper's
    quality checks with the temperature/beam fallback. ``pipeline="faster-whisper"`` is
    faster-whisper's ``BatchedInferencePipeline``; ``batch_size=1`` is faster-whisper's
    sequential long-form decoding (``beam_size=5`` as in the original notes).
    """

    language: str | None = None
    task: str = "transcribe"
    #: 0 = automatic: greedy, beam 5 for the languages that need it (Korean) in malsori's
    #: pipeline; greedy (1) in faster-whisper's.
    beam_size: int = 0
    best_of: int = 5
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    word_timestamps: bool = False
    vad_filter: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    #: faster-whisper's pipelines only: malsori's decodes each window on its own (a
    #: previous-window prompt measured worse there, docs/pipeline.md)
    condition_on_previous_text: bool = True
    batch_size: int = 8
    pipeline: str = "malsori"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", normalize_language(self.language))
        if self.task not in TASKS:
            raise OptionsError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        # Each hypothesis holds the decoder's cache (36 MB per window for base): a beam of
        # 100000 took 23 GB and the OOM killer, 2000 took 2.6 GB for 11 s of speech.
        _check_int("beam_size", self.beam_size, 0, MAX_BEAM, " (or 0 = automatic)")
        if self.pipeline not in PIPELINES:
            raise OptionsError(
                f"unknown pipeline {self.pipeline!r}; expected one of {', '.join(PIPELINES)}"
            )
        _check_int("best_of", self.best_of, 1, MAX_BEAM)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        temps = (
            list(self.temperature)
            if isinstance(self.temperature, Iterable) and not isinstance(self.temperature, str)
            else [self.temperature]
        )
        for t in temps:  # numbers.Real: NumPy's floats too (np.linspace)
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= t <= 1.0:
                raise OptionsError(f"temperature must be from 0 to 1, got {t!r}")
        # plain Python numbers from here on (a NumPy array is neither tuple nor float)
        value = self.temperature
        plain = (
            tuple(float(t) for t in temps)
            if len(temps) != 1 or not isinstance(value, numbers.Real)
            else float(temps[0])
        )
        object.__setattr__(self, "temperature", plain)
        for name in ("beam_size", "best_of", "batch_size"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("initial_prompt", "hotwords"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise OptionsError(f"{name} must be a string, got {type(value).__name__}")

    def replace(self, **changes: Any) -> DecodeOptions:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def uses_malsori_pipeline(self) -> bool:
        """True when ``transcribe`` decodes with malsori's own pipeline."""
        return self.batch_size > 1 and self.pipeline == "malsori"

    def transcribe_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``WhisperModel.transcribe`` / ``BatchedInferencePipeline``."""
        kwargs: dict[str, Any] = {
            "language": self.language,
            "task": self.task,
            "beam_size": self.beam_size or 1,
            "best_of": self.best_of,
            "temperature": self.temperature,
            "word_timestamps": self.word_timestamps,
            "vad_filter": self.vad_filter,
            "initial_prompt": self.initial_prompt,
            "hotwords": self.hotwords,
            "condition_on_previous_text": self.condition_on_previous_text,
        }
        if self.batch_size > 1:
            kwargs["batch_size"] = self.batch_size
            # The batched pipeline cuts long audio at the silences Silero VAD finds and decodes
            # the <=30 s chunks independently; without VAD it refuses audio over 30 s.
            kwargs["vad_filter"] = True
        kwargs.update(self.extra)
        return kwargs
