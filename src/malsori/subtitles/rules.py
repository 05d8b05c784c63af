"""The numbers subtitles are held to, per language, and the options that override them.

The limits follow the Netflix Timed Text Style Guides (General Requirements and the English,
Korean, Japanese and Chinese guides); docs/subtitles.md lists each number with its source.
Widths are counted as the guides count them: one per character in alphabetic languages; in
Korean, Japanese and Chinese a full-width character counts one and a half-width one (Latin
letters, digits, spaces, punctuation) counts half.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import OptionsError

#: Netflix General Requirements: at least 5/6 s per event (20 frames at 24 fps).
MIN_CUE_DURATION = 5 / 6
#: Netflix General Requirements: at most 7 s per event.
MAX_CUE_DURATION = 7.0
#: Netflix General Requirements: at most 2 lines per event.
MAX_LINE_COUNT = 2
#: Netflix General Requirements: 2 frames between events at any frame rate; 2 frames at
#: 23.976 fps is 83.4 ms, rounded up to whole milliseconds (SRT/WebVTT resolution).
MIN_GAP = 0.084
#: A silence longer than this between two words is never inside a cue (the issue's default).
SPLIT_ON_PAUSE = 1.0
#: Gaps shorter than this are closed to :data:`MIN_GAP` by extending the earlier cue (the
#: usual "chaining" of subtitle timing: 12 frames at 24 fps). Gives slow readers more time.
CHAIN_GAP = 0.5
#: How far a cue may be shown past its own speech (or start after it) to respect the reading
#: speed: Netflix lets out-times extend up to 12 frames past the audio.
MAX_LAG = 0.5
#: How far a cue may start before its speech, for the same reason (a common lead-in).
MAX_LEAD = 0.25

#: English (Netflix English (USA) guide): 42 characters per line, 20 characters per second.
ENGLISH_LINE_WIDTH = 42
ENGLISH_CPS = 20.0
#: Korean (Netflix Korean guide): 16 characters per line (Latin letters, spaces and
#: punctuation count half), 12 characters per second.
KOREAN_LINE_WIDTH = 16
KOREAN_CPS = 12.0
#: Japanese (Netflix Japanese guide): 13 full-width characters per line, 4 per second.
JAPANESE_LINE_WIDTH = 13
JAPANESE_CPS = 4.0
#: Chinese (Netflix Simplified/Traditional Chinese guides): 16 characters per line, 9 per second.
CHINESE_LINE_WIDTH = 16
CHINESE_CPS = 9.0
#: Other languages: the 42-character line of the General Requirements and the 17 characters
#: per second that most Netflix guides for alphabetic languages set for adult programmes.
GENERIC_LINE_WIDTH = 42
GENERIC_CPS = 17.0


@dataclass(frozen=True)
class LanguageRules:
    """The defaults of one language: line width (in that language's width units), reading
    speed, and how text is counted and broken."""

    name: str
    max_line_width: float
    max_cps: float
    #: half-width characters count 0.5 (Korean, Japanese, Chinese)
    half_width_counts_half: bool = False
    #: words are separated by spaces (False for Japanese and Chinese)
    spaced: bool = True
    #: which break rules apply: "en" (English word lists), "ko" (eojeol rules), or
    #: "other" (punctuation only)
    style: str = "other"


ENGLISH = LanguageRules("English", ENGLISH_LINE_WIDTH, ENGLISH_CPS, style="en")
KOREAN = LanguageRules(
    "Korean", KOREAN_LINE_WIDTH, KOREAN_CPS, half_width_counts_half=True, style="ko"
)
JAPANESE = LanguageRules(
    "Japanese", JAPANESE_LINE_WIDTH, JAPANESE_CPS, half_width_counts_half=True, spaced=False
)
CHINESE = LanguageRules(
    "Chinese", CHINESE_LINE_WIDTH, CHINESE_CPS, half_width_counts_half=True, spaced=False
)
GENERIC = LanguageRules("generic", GENERIC_LINE_WIDTH, GENERIC_CPS)

#: Rules by Whisper language code; anything else gets :data:`GENERIC`.
LANGUAGES: dict[str, LanguageRules] = {
    "en": ENGLISH,
    "ko": KOREAN,
    "ja": JAPANESE,
    "zh": CHINESE,
    "yue": CHINESE,
}


def rules_for(language: str | None) -> LanguageRules:
    """The rules of a Whisper language code (``en``, ``ko``, ``ja``, ...); generic otherwise."""
    code = (language or "").strip().lower().split("-")[0].split("_")[0]
    return LANGUAGES.get(code, GENERIC)


@dataclass(frozen=True)
class SubtitleOptions:
    """Overrides of the cue rules; ``None`` takes the language's default.

    Travels from the CLI flags (``--max-line-width`` ...) to the writers. ``language``
    overrides the transcript's language for choosing the defaults."""

    max_line_width: float | None = None
    max_line_count: int | None = None
    max_cue_duration: float | None = None
    min_cue_duration: float | None = None
    max_cps: float | None = None
    split_on_pause: float | None = None
    highlight_words: bool = False
    language: str | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Refuse limits no cue could meet."""
        positive = {
            "max_line_width": self.max_line_width,
            "max_line_count": self.max_line_count,
            "max_cue_duration": self.max_cue_duration,
            "max_cps": self.max_cps,
            "split_on_pause": self.split_on_pause,
        }
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise OptionsError(f"{name} must be positive, got {value}")
            if value is not None and not math.isfinite(value):  # inf crashed after decoding
                raise OptionsError(f"{name} must be a finite number, got {value}")
        if self.min_cue_duration is not None and not self.min_cue_duration >= 0:  # NaN too
            raise OptionsError(f"min_cue_duration must be >= 0, got {self.min_cue_duration}")
        if self.min_cue_duration is not None and not math.isfinite(self.min_cue_duration):
            raise OptionsError("min_cue_duration must be a finite number, got inf")
        lo = MIN_CUE_DURATION if self.min_cue_duration is None else self.min_cue_duration
        hi = MAX_CUE_DURATION if self.max_cue_duration is None else self.max_cue_duration
        if lo > hi:
            raise OptionsError(f"min_cue_duration ({lo} s) exceeds max_cue_duration ({hi} s)")

    def limits(self, language: str | None) -> Limits:
        """The effective limits for a transcript in ``language``."""
        lang = rules_for(self.language or language)
        return Limits(
            rules=lang,
            max_line_width=lang.max_line_width
            if self.max_line_width is None
            else self.max_line_width,
            max_line_count=MAX_LINE_COUNT if self.max_line_count is None else self.max_line_count,
            max_cue_duration=MAX_CUE_DURATION
            if self.max_cue_duration is None
            else self.max_cue_duration,
            min_cue_duration=MIN_CUE_DURATION
            if self.min_cue_duration is None
            else self.min_cue_duration,
            max_cps=lang.max_cps if self.max_cps is None else self.max_cps,
            split_on_pause=SPLIT_ON_PAUSE if self.split_on_pause is None else self.split_on_pause,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (JSON-ready), e.g. for a batch job's config;
        ``SubtitleOptions(**d)`` makes it back."""
        return asdict(self)

    def replace(self, **changes: object) -> SubtitleOptions:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Limits:
    """Every limit resolved to a number, for one language."""

    rules: LanguageRules
    max_line_width: float
    max_line_count: int
    max_cue_duration: float
    min_cue_duration: float
    max_cps: float
    split_on_pause: float
    min_gap: float = MIN_GAP

    def width(self, text: str) -> float:
        """Width of ``text`` as the language's guide counts it."""
        return text_width(text, half=self.rules.half_width_counts_half)

    def cue_width(self, lines: list[str]) -> float:
        """Characters read in a cue (line breaks not counted), for the reading speed."""
        return sum(self.width(line) for line in lines)


def char_width(ch: str, *, half: bool) -> float:
    """1 per character; with ``half``, full-width (Hangul, kana, Han, full-width forms)
    counts 1 and anything narrow (Latin letters, digits, spaces, punctuation) 0.5."""
    if not half:
        return 1.0
    return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.5


def text_width(text: str, *, half: bool) -> float:
    """Sum of :func:`char_width` over ``text``."""
    if not half:
        return float(len(text))
    return sum(char_width(ch, half=True) for ch in text)
