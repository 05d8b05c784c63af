"""Speakers for a transcript: each word takes the speaker it overlaps most, and segments are
split where the speaker changes (whisperX's ``assign_word_speakers`` behaviour, plus the
split). No torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..transcript import Segment, Transcript, Word
from .turns import Turn


def speaker_at(start: float, end: float, turns: Sequence[Turn]) -> str | None:
    """The speaker talking most during [start, end]; with no overlap, the nearest turn's
    speaker (a word in a pause between turns); ``None`` when there are no turns."""
    if not turns:
        return None
    talk: dict[str, float] = {}
    for t in turns:
        overlap = min(end, t.end) - max(start, t.start)
        if overlap > 0:
            talk[t.speaker] = talk.get(t.speaker, 0.0) + overlap
    if talk:
        return max(talk, key=lambda s: talk[s])
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: max(t.start - middle, middle - t.end, 0.0))
    return nearest.speaker


def _split(
    seg: Segment, turns: Sequence[Turn], encode: Callable[[str], list[int]] | None
) -> list[Segment]:
    if not seg.words:
        return [dataclasses.replace(seg, speaker=speaker_at(seg.start, seg.end, turns))]
    words = [dataclasses.replace(w, speaker=speaker_at(w.start, w.end, turns)) for w in seg.words]
    groups: list[list[Word]] = []
    for w in words:
        if groups and groups[-1][-1].speaker == w.speaker:
            groups[-1].append(w)
        else:
            groups.append([w])
    if len(groups) == 1:
        return [dataclasses.replace(seg, words=words, speaker=words[0].speaker)]
    return [
        dataclasses.replace(
            seg,
            start=group[0].start if i else seg.start,
            end=group[-1].end if i < len(groups) - 1 else seg.end,
            text="".join(w.word for w in group),
            words=group,
            speaker=group[0].speaker,
            tokens=encode("".join(w.word for w in group)) if encode else [],
        )
        for i, group in enumerate(groups)
    ]


def assign_speakers(
    transcript: Transcript,
    turns: Sequence[Turn],
    encode: Callable[[str], list[int]] | None = None,
) -> Transcript:
    """A copy of ``transcript`` whose words and segments carry speakers (segments split at
    speaker changes, renumbered); ``speakers`` lists those heard, in order. A split
    segment's ``tokens`` are ``encode(its text)`` (the model's tokenizer: see
    :func:`token_encoder`), or empty without ``encode``."""
    segments = [piece for seg in transcript.segments for piece in _split(seg, turns, encode)]
    segments = [dataclasses.replace(s, id=i) for i, s in enumerate(segments)]
    speakers = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
    return dataclasses.replace(transcript, segments=segments, speakers=speakers, diarized=True)


def token_encoder(model: Any) -> Callable[[str], list[int]] | None:
    """The token ids of a text under a faster-whisper ``WhisperModel``'s tokenizer (no
    special tokens), as Whisper's segment ``tokens``; None when it has no tokenizer."""
    tokenizer = getattr(model, "hf_tokenizer", None)
    if tokenizer is None:
        return None

    def encode(text: str) -> list[int]:
        return [int(t) for t in tokenizer.encode(text, add_special_tokens=False).ids]

    return encode


__all__ = ["assign_speakers", "speaker_at", "token_encoder"]
