"""Stage 7: from a window's tokens to segments on the recording's time axis.

Whisper's timestamp tokens split a window into segments (``<|t0|> text <|t1|>``). A
decode that stops without closing its last segment is unfinished: its tail is dropped and
the window's remainder is decoded again from the last timestamp (as sequential Whisper
seeks), so no speech is lost when the decoder ends early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Seconds per timestamp token.
TIME_PRECISION = 0.02
#: Seconds of window left after the last segment that mean the decoder stopped early.
EARLY_STOP = 3.0


@dataclass
class RawSegment:
    """A segment in window time: ``start``/``end`` seconds, its tokens (timestamps
    included, as Whisper reports them) and, later, its words (recording time)."""

    start: float
    end: float
    tokens: list[int]
    words: list[dict[str, Any]] = field(default_factory=list)


def split_by_timestamps(
    tokenizer: Any, tokens: list[int], window_seconds: float
) -> tuple[list[RawSegment], float | None, RawSegment | None]:
    """Input: the decoded tokens of one window. Output: its closed segments (window time);
    when the decode is unfinished, the window time to decode again from (else None) and
    the unfinished tail (kept only if the remainder is not decoded again)."""
    tb = tokenizer.timestamp_begin
    n = len(tokens)
    single_ending = n >= 2 and tokens[-2] < tb <= tokens[-1]
    consecutive = [i for i in range(1, n) if tokens[i] >= tb and tokens[i - 1] >= tb]
    segments: list[RawSegment] = []
    if consecutive:
        slices = consecutive + ([n] if single_ending else [])
        last = 0
        for cut in slices:
            part = tokens[last:cut]
            segments.append(
                RawSegment((part[0] - tb) * TIME_PRECISION, (part[-1] - tb) * TIME_PRECISION, part)
            )
            last = cut
        if single_ending:
            return _keep(segments, window_seconds), _stopped_early(segments, window_seconds), None
        resume = (tokens[last - 1] - tb) * TIME_PRECISION
        rest = tokens[last:]
        tail = None
        if any(t < tokenizer.eot for t in rest):
            tail = _keep([RawSegment(resume, window_seconds, rest)], window_seconds)[0]
        return _keep(segments, window_seconds), resume, tail
    stamps = [t for t in tokens if t >= tb]
    end = window_seconds
    if stamps and stamps[-1] != tb:
        end = (stamps[-1] - tb) * TIME_PRECISION
    start = (stamps[0] - tb) * TIME_PRECISION if stamps and tokens[0] >= tb else 0.0
    segments.append(RawSegment(start, end, tokens))
    return _keep(segments, window_seconds), _stopped_early(segments, window_seconds), None


def _stopped_early(segments: list[RawSegment], window_seconds: float) -> float | None:
    """A window is all speech (VAD regions), so a decode that ends more than
    ``EARLY_STOP`` seconds before the window does has dropped speech: decode again from
    its last timestamp."""
    end = segments[-1].end if segments else 0.0
    return end if window_seconds - end > EARLY_STOP else None


def _keep(segments: list[RawSegment], window_seconds: float) -> list[RawSegment]:
    for s in segments:
        s.start = min(max(0.0, s.start), window_seconds)
        s.end = min(max(s.start, s.end), window_seconds)
    return segments


def text_tokens(tokenizer: Any, seg: RawSegment) -> list[int]:
    """The segment's text tokens (timestamps and specials removed)."""
    return [t for t in seg.tokens if t < tokenizer.eot]
