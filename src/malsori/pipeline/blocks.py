"""Stage 1: audio in blocks.

The whole recording is never held in memory: a path, bytes or file object is decoded by
PyAV block by block (the same resampler settings as :func:`malsori.audio.load_audio`, so
the samples are identical), and an array is sliced into the same blocks.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from ..audio import (
    SAMPLE_RATE,
    AudioSource,
    Downmix,
    _check_wav_header,
    _declared_seconds,
    check_audio_path,
    check_audio_source,
    check_complete,
    open_container,
    undecodable,
)
from ..errors import AudioError

#: Seconds of audio per block (1 minute: 3.8 MB of float32; Silero needs ~35 MB for it).
BLOCK_SECONDS = 60.0

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)  # identity: == would compare the samples arrays
class AudioBlock:
    """``samples`` (16 kHz mono float32) starting at sample ``start`` of the recording."""

    start: int
    samples: Samples

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


class AudioStream:
    """Input: a path, bytes, a binary file object or a 16 kHz float32 array.
    Output: :class:`AudioBlock` s in order (iterate once); ``declared_seconds`` is the
    length the container announces (None when unknown), ``samples_read`` what came out.

    Raises :class:`AudioError` for the same defects as ``load_audio``: missing, empty or
    non-audio input before the first block, truncated or zero-length audio after the last.
    """

    def __init__(
        self, source: AudioSource | Samples, *, block_seconds: float = BLOCK_SECONDS
    ) -> None:
        self.block_samples = max(1, int(block_seconds * SAMPLE_RATE))
        self.samples_read = 0
        self._array: Samples | None = None
        self._source: str | BinaryIO | None = None
        self._label = "<audio>"
        self.declared_seconds: float | None = None
        self._mix: Downmix | None = None  # the decoder (how far the other streams went)
        if isinstance(source, np.ndarray):
            self._array = np.asarray(source, dtype=np.float32).reshape(-1)
            self.declared_seconds = len(self._array) / SAMPLE_RATE
            if self._array.size == 0:
                raise AudioError("<array>: contains no audio samples (zero-length audio)")
        else:
            self._open(source)

    def _open(self, source: AudioSource) -> None:
        label = None
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            self._label = label = str(path)
            check_audio_path(path, label)
            if not stat.S_ISFIFO(path.stat().st_mode):
                self._source = str(path)
                self._probe()
                return
            # a pipe can be read once (the probe would use it up): held in memory
            with open(path, "rb") as fh:
                source = fh.read()
        check_audio_source(source)
        data = source if isinstance(source, bytes) else bytes(source.read())
        self._label = label or (
            "<bytes>"
            if isinstance(source, bytes)
            else str(getattr(source, "name", None) or "<stream>")
        )
        if not data:
            raise AudioError(f"{self._label}: input is empty (0 bytes)")
        buf = io.BytesIO(data)
        _check_wav_header(buf, self._label, len(data))
        self._source = buf
        self._probe()

    def _probe(self) -> None:
        import av

        assert self._source is not None
        try:
            with open_container(self._source, self._label) as container:
                if not container.streams.audio:
                    raise AudioError(f"{self._label}: contains no audio stream")
                self.declared_seconds = _declared_seconds(
                    container, container.streams.audio[0], self._source
                )
        except AudioError:
            raise
        except av.FFmpegError as exc:
            raise undecodable(self._label, exc) from exc
        except (OSError, ValueError) as exc:
            raise AudioError(f"{self._label}: could not be decoded ({exc})") from exc
        if isinstance(self._source, io.BytesIO):
            self._source.seek(0)

    def __iter__(self) -> Iterator[AudioBlock]:
        pieces = self._array_pieces() if self._array is not None else self._decoded_pieces()
        pending: list[Samples] = []
        held = 0
        start = 0
        for piece in pieces:
            pending.append(piece)
            held += len(piece)
            while held >= self.block_samples:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                block, rest = joined[: self.block_samples], joined[self.block_samples :]
                yield AudioBlock(start, block)
                start += len(block)
                pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if held:
            yield AudioBlock(start, np.concatenate(pending) if len(pending) > 1 else pending[0])
            start += held
        self.samples_read = start
        self._check_complete()

    def _array_pieces(self) -> Iterator[Samples]:
        assert self._array is not None
        for i in range(0, len(self._array), self.block_samples):
            yield self._array[i : i + self.block_samples]

    def _decoded_pieces(self) -> Iterator[Samples]:
        import av

        assert self._source is not None
        try:
            with open_container(self._source, self._label) as container:
                stream = container.streams.audio[0]
                self._mix = Downmix(stream, self._label)
                for piece in self._mix.decode():
                    yield _to_float(piece)
        except av.FFmpegError as exc:
            raise undecodable(self._label, exc) from exc
        except (OSError, ValueError) as exc:
            raise AudioError(f"{self._label}: could not be decoded ({exc})") from exc

    def _check_complete(self) -> None:
        if self.samples_read == 0:
            raise AudioError(f"{self._label}: contains no audio samples (zero-length audio)")
        if self._array is None:
            covered = self._mix.covered_seconds if self._mix is not None else 0.0
            check_complete(
                self._label, self.declared_seconds, self.samples_read / SAMPLE_RATE, covered
            )


def _to_float(frame: npt.NDArray[Any]) -> Samples:
    return (frame.reshape(-1).astype(np.float32) / 32768.0).astype(np.float32)
