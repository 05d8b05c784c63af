"""The result types: a :class:`Transcript` of :class:`Segment` s (with :class:`Word` s when
word timestamps were asked for). Plain dataclasses, JSON-ready through ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float
    #: Who said it (diarization: ``SPEAKER_1``...), else None.
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float | None = None
    words: list[Word] | None = None
    #: Where the decoder's 30 s window started, in mel frames (10 ms), as Whisper reports it.
    seek: int = 0
    #: The token ids of the text (Whisper's tokenizer).
    tokens: list[int] = field(default_factory=list)
    #: The language this segment was decoded in (malsori's pipeline detects it per window).
    language: str | None = None
    #: Quality flags from malsori's pipeline: "repetition", "low_confidence", "sampled",
    #: "little_text" (docs/pipeline.md, "Quality checks").
    flags: list[str] = field(default_factory=list)
    #: Who spoke (diarization: ``SPEAKER_1``...), else None.
    speaker: str | None = None

    @classmethod
    def from_faster_whisper(cls, seg: Any) -> Segment:
        words = (
            [Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in seg.words]
            if seg.words is not None
            else None
        )
        return cls(
            id=int(seg.id),
            start=float(seg.start),
            end=float(seg.end),
            text=seg.text,
            avg_logprob=float(seg.avg_logprob),
            no_speech_prob=float(seg.no_speech_prob),
            compression_ratio=float(seg.compression_ratio),
            temperature=None if seg.temperature is None else float(seg.temperature),
            words=words,
            seek=int(seg.seek),
            tokens=[int(t) for t in seg.tokens],
        )


@dataclass
class Transcript:
    segments: list[Segment]
    language: str
    language_probability: float
    duration: float
    model: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    processing_time: float | None = None
    #: The speakers heard, in order of first appearance (diarized transcripts only).
    speakers: list[str] = field(default_factory=list)
    #: Whether speakers were asked for (a diarized transcript of silence has none, but
    #: keeps its shape: ``speakers`` in JSON, the ``speaker`` column in TSV).
    diarized: bool = False
    #: What malsori had to do to the input, said as warnings while it was read and
    #: transcribed (a damaged packet replaced by silence, a gap in its times filled,
    #: inverted-polarity stereo); in JSON only when there are some.
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text
        if not data["warnings"]:
            del data["warnings"]
        # Speaker keys only in diarized transcripts (other JSON stays as it was); there
        # always, even when nobody speaks (then ``speakers`` is empty).
        diarized = bool(data.pop("diarized") or self.speakers)
        if diarized:
            return data
        del data["speakers"]
        for seg in data["segments"]:
            if seg["speaker"] is None:
                del seg["speaker"]
            for word in seg["words"] or []:
                if word["speaker"] is None:
                    del word["speaker"]
        return data
