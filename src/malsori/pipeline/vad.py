"""Stage 2: speech regions, found by Silero VAD (faster-whisper's copy) block by block.

Silero runs on a buffer that holds the new block plus the undecided tail of the previous
one; a region is final once it ends at least ``HOLD_SECONDS`` before the buffer's end, so
memory stays bounded by one block plus one region (<= 30 s) whatever the file's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .blocks import AudioBlock, Samples

#: A region that ends this close to the end of the audio seen so far may still grow.
HOLD_SECONDS = 2.0


@dataclass(frozen=True, eq=False)  # identity: == would compare the samples arrays
class Region:
    """One stretch of speech: samples ``start``..``end`` of the recording (VAD padding
    included) and their audio."""

    start: int
    end: int
    samples: Samples


def vad_options(max_speech_s: float = 30.0) -> object:
    """faster-whisper's batched-pipeline VAD settings: regions of at most 30 s, split at
    pauses of 160 ms, padded by 400 ms (Silero's defaults otherwise)."""
    from faster_whisper.vad import VadOptions

    return VadOptions(max_speech_duration_s=max_speech_s, min_silence_duration_ms=160)


class StreamingVad:
    """Input: :class:`AudioBlock` s in order (``feed``), then ``flush`` at the end.
    Output: the :class:`Region` s that became final, in time order, never overlapping."""

    def __init__(self) -> None:
        self._options = vad_options()
        self._buffer: Samples = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0

    def feed(self, block: AudioBlock) -> list[Region]:
        """Add ``block`` (contiguous with the previous one); return the regions now final."""
        if not len(self._buffer):
            self._buffer_start = block.start
            self._buffer = block.samples
        else:
            self._buffer = np.concatenate([self._buffer, block.samples])
        return self._regions(final=False)

    def flush(self) -> list[Region]:
        """The regions left in the buffer once the audio has ended."""
        regions = self._regions(final=True) if len(self._buffer) else []
        self._buffer = np.zeros(0, dtype=np.float32)
        return regions

    def _regions(self, *, final: bool) -> list[Region]:
        from faster_whisper.vad import get_speech_timestamps

        buf = self._buffer
        found = get_speech_timestamps(buf, self._options)
        limit = len(buf) if final else len(buf) - int(HOLD_SECONDS * SAMPLE_RATE)
        done = [r for r in found if final or r["end"] <= limit]
        out = [
            Region(self._buffer_start + r["start"], self._buffer_start + r["end"],
                   buf[r["start"] : r["end"]].copy())
            for r in done
        ]  # fmt: skip
        if final:
            return out
        # keep everything after the last final region (or the last HOLD_SECONDS of silence)
        cut = done[-1]["end"] if done else max(0, limit)
        pending = [r for r in found if r not in done]
        if pending:
            cut = min(cut, pending[0]["start"]) if not done else cut
        cut = max(0, min(cut, len(buf)))
        self._buffer = buf[cut:].copy()
        self._buffer_start += cut
        return out
