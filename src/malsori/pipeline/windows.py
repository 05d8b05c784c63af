"""Stage 3: decoder windows of at most 30 s, packed from speech regions.

Speech regions are joined in time order until the next would overflow 30 s (as
faster-whisper's batched pipeline does); the silence between them is left out. A window
keeps the map from its own time axis back to the recording's, so every timestamp the
decoder or the aligner gives lands inside a speech region (never inside non-speech).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .blocks import Samples
from .vad import Region

WINDOW_SECONDS = 30.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)


@dataclass(frozen=True)
class Piece:
    """Window samples ``offset``..``offset + length`` are recording samples ``start``.."""

    offset: int
    start: int
    length: int


@dataclass(frozen=True, eq=False)  # identity: == would compare the samples arrays
class Window:
    """Input of the encoder: up to 30 s of ``samples`` made of ``pieces`` of the recording.
    ``depth`` counts re-decodes of an unfinished window's remainder."""

    samples: Samples
    pieces: tuple[Piece, ...]
    depth: int = 0
    #: For a window joined from several (see :func:`pack`): which one each piece came from.
    sources: tuple[int, ...] = ()
    parts: tuple[Window, ...] = ()
    #: Set on a run cut out of a window where the language changes: the search decided its
    #: language, so its regions keep it when decoded again (they are not detected alone).
    language: str | None = None

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def start(self) -> float:
        return self.pieces[0].start / SAMPLE_RATE

    @property
    def end(self) -> float:
        last = self.pieces[-1]
        return (last.start + last.length) / SAMPLE_RATE

    def piece_at(self, t: float, *, end: bool = False) -> int:
        """Index of the piece that holds window time ``t`` (seconds); a time in a gap
        between pieces belongs to the next piece, or to the previous one for an ``end``."""
        pos = t * SAMPLE_RATE
        for i, p in enumerate(self.pieces):
            if pos < p.offset:
                return i - 1 if end and i > 0 else i
            if pos < p.offset + p.length or (end and pos < p.offset + p.length + 1):
                return i  # (an end on the piece's last sample is its end, not the next's)
        return len(self.pieces) - 1

    def to_recording(self, t: float, piece: int | None = None) -> float:
        """Window time ``t`` -> recording time, clamped into the piece ``piece`` (by
        default the piece that holds ``t``)."""
        p = self.pieces[self.piece_at(t) if piece is None else piece]
        pos = min(max(t * SAMPLE_RATE, p.offset), p.offset + p.length)
        return (p.start + pos - p.offset) / SAMPLE_RATE

    def remainder(self, t: float) -> Window | None:
        """The part of this window after window time ``t`` (an unfinished decode is
        decoded again from there, as sequential Whisper seeks); None if under 1 s."""
        cut = round(t * SAMPLE_RATE)
        if len(self.samples) - cut < SAMPLE_RATE:
            return None
        return self._after(cut)

    def _after(self, cut: int) -> Window:
        """The window from sample ``cut`` on; a joined window keeps which part each piece
        came from, and its parts (the first one cut too), so a segment that runs across
        two of them is still found (``run._crosses``) and decoded apart."""
        pieces: list[Piece] = []
        sources: list[int] = []
        for i, p in enumerate(self.pieces):
            lo, hi = max(p.offset, cut), p.offset + p.length
            if hi > lo:
                pieces.append(Piece(lo - cut, p.start + lo - p.offset, hi - lo))
                if self.sources:
                    sources.append(self.sources[i])
        parts: list[Window] = []
        if self.sources:
            kept = sorted(set(sources))
            for k in kept:  # the part's first sample in this window's time
                first = next(p for p, s in zip(self.pieces, self.sources, strict=True) if s == k)
                inner = cut - first.offset + self.parts[k].pieces[0].offset
                parts.append(self.parts[k]._after(inner) if inner > 0 else self.parts[k])
            sources = [kept.index(s) for s in sources]
        if len(parts) == 1:  # what is left is one part: a window of its own
            return Window(parts[0].samples, parts[0].pieces, self.depth + 1)
        return Window(
            self.samples[cut:], tuple(pieces), self.depth + 1, tuple(sources), tuple(parts)
        )


def _split(region: Region) -> Iterator[Region]:
    """A region longer than a window (VAD padding can add a little) in window-sized parts."""
    for lo in range(0, region.end - region.start, WINDOW_SAMPLES):
        hi = min(lo + WINDOW_SAMPLES, region.end - region.start)
        yield Region(region.start + lo, region.start + hi, region.samples[lo:hi])


#: Speech after a longer silence than this starts a new window: a window is decoded as
#: one segment, which would otherwise span the silence (JFK, 30 s of silence, another
#: speaker: one segment 0-50.7 s in json and tsv). Costs an encoder pass per such pause.
MAX_JOINED_SILENCE = 10 * SAMPLE_RATE


class WindowPacker:
    """Input: speech :class:`Region` s in time order (``feed``), then ``flush``.
    Output: full :class:`Window` s, in time order."""

    def __init__(self) -> None:
        self._regions: list[Region] = []
        self._length = 0

    def feed(self, regions: list[Region]) -> list[Window]:
        out: list[Window] = []
        for whole in regions:
            for region in _split(whole):
                n = region.end - region.start
                if self._regions and (
                    self._length + n > WINDOW_SAMPLES
                    or region.start - self._regions[-1].end > MAX_JOINED_SILENCE
                ):
                    out.append(self._take())
                self._regions.append(region)
                self._length += n
        return out

    def flush(self) -> list[Window]:
        return [self._take()] if self._regions else []

    def _take(self) -> Window:
        pieces, offset = [], 0
        for r in self._regions:
            pieces.append(Piece(offset, r.start, r.end - r.start))
            offset += r.end - r.start
        samples = np.concatenate([r.samples for r in self._regions]).astype(np.float32)
        self._regions, self._length = [], 0
        return Window(samples, tuple(pieces))


#: Silence put between joined windows (Whisper closes a segment at a pause).
JOIN_GAP = SAMPLE_RATE


def pack(windows: list[Window]) -> list[Window]:
    """Input: short windows (e.g. the remainders of unfinished decodes). Output: as few
    windows as possible, each their concatenation up to 30 s with 1 s of silence between
    them (pieces re-based, ``sources``/``parts`` kept), so a few seconds of leftover speech
    do not each cost a 30 s encoder pass."""
    out: list[Window] = []
    group: list[Window] = []
    length = 0
    for w in windows:
        if group and length + JOIN_GAP + len(w.samples) > WINDOW_SAMPLES:
            out.append(_join(group))
            group, length = [], 0
        length += (JOIN_GAP if group else 0) + len(w.samples)
        group.append(w)
    if group:
        out.append(_join(group))
    return out


def _join(windows: list[Window]) -> Window:
    if len(windows) == 1:
        return windows[0]
    pieces: list[Piece] = []
    sources: list[int] = []
    chunks: list[Samples] = []
    offset = 0
    gap = np.zeros(JOIN_GAP, dtype=np.float32)
    for k, w in enumerate(windows):
        if k:
            chunks.append(gap)
            offset += JOIN_GAP
        pieces += [Piece(p.offset + offset, p.start, p.length) for p in w.pieces]
        sources += [k] * len(w.pieces)
        chunks.append(w.samples)
        offset += len(w.samples)
    samples = np.concatenate(chunks).astype(np.float32)
    return Window(
        samples, tuple(pieces), max(w.depth for w in windows), tuple(sources), tuple(windows)
    )


def sub_window(window: Window, pieces: tuple[Piece, ...]) -> Window:
    """The window made of some of ``window``'s pieces (in order), re-based to start at 0."""
    chunks = [window.samples[p.offset : p.offset + p.length] for p in pieces]
    out: list[Piece] = []
    offset = 0
    for p in pieces:
        out.append(Piece(offset, p.start, p.length))
        offset += p.length
    return Window(np.concatenate(chunks).astype(np.float32), tuple(out), window.depth)
