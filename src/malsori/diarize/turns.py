"""Diarization results as plain data (no torch): speaker turns, RTTM and JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ManifestError


@dataclass(frozen=True)
class Turn:
    """One speaker talking from ``start`` to ``end`` (seconds); turns of different speakers
    may overlap (overlapped speech)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Diarization:
    """Who spoke when in one recording: ``turns`` sorted by start; ``speakers`` in order of
    first appearance (``SPEAKER_1``, ``SPEAKER_2``, ...)."""

    turns: list[Turn]
    duration: float
    speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.turns.sort(key=lambda t: (t.start, t.end, t.speaker))
        if not self.speakers:
            self.speakers = list(dict.fromkeys(t.speaker for t in self.turns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 3),
            "speakers": self.speakers,
            "turns": [
                {"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker}
                for t in self.turns
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def to_rttm(self, file_id: str) -> str:
        """NIST RTTM: ``SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``."""
        uri = "_".join(file_id.split()) or "audio"
        return "".join(
            f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
            for t in self.turns
        )


#: The record types of NIST RTTM (only SPEAKER lines are read; the others are skipped).
RTTM_TYPES = frozenset(
    [
        "SEGMENT",
        "NOSCORE",
        "NO_RT_METADATA",
        "LEXEME",
        "NON-LEX",
        "NON-SPEECH",
        "FILLER",
        "EDIT",
        "IP",
        "SU",
        "CB",
        "A/P",
        "SPEAKER",
        "SPKR-INFO",
        "NOSCORESPKR",
    ]
)


def parse_rttm(text: str, *, source: str = "RTTM") -> dict[str, list[Turn]]:
    """The SPEAKER lines of an RTTM text, grouped by file id; raises :class:`ManifestError`
    for a malformed SPEAKER line or a line that is not RTTM at all (the message names the
    line). Blank lines and ``#`` / ``;`` comments are skipped."""
    files: dict[str, list[Turn]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] not in RTTM_TYPES:
            raise ManifestError(
                f"{source}:{number}: not an RTTM line (it starts with {fields[0][:20]!r}, "
                "not a type such as SPEAKER)"
            )
        if fields[0] != "SPEAKER":
            continue
        try:
            if len(fields) < 8:
                raise ValueError("fewer than 8 fields")
            onset, duration = float(fields[3]), float(fields[4])
            if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration < 0:
                raise ValueError("onset and duration must be finite and >= 0")
        except ValueError as exc:
            raise ManifestError(f"{source}:{number}: bad RTTM line ({exc})") from None
        files.setdefault(fields[1], []).append(Turn(onset, onset + duration, fields[7]))
    return files


def merge_turns(turns: Iterable[Turn], *, gap: float = 0.0) -> list[Turn]:
    """Same-speaker turns that overlap or lie at most ``gap`` apart joined into one."""
    out: list[Turn] = []
    last: dict[str, int] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        i = last.get(t.speaker)
        if i is not None and t.start - out[i].end <= gap:
            out[i] = Turn(out[i].start, max(out[i].end, t.end), t.speaker)
            continue
        last[t.speaker] = len(out)
        out.append(t)
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


__all__ = ["Diarization", "Turn", "merge_turns", "parse_rttm"]
