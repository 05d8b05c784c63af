"""Decoding an upload with the server's limits: the duration limit is checked against the
container's declared duration before decoding and enforced while decoding (a compressed
hour of silence is a few hundred kB), samples go straight into one float32 buffer (no
per-frame lists, no second copy), and a cancelled request stops between frames.

Messages name the client's file name, never the temporary file's path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from ..audio import (
    SAMPLE_RATE,
    Downmix,
    _check_wav_header,
    _declared_seconds,
    check_complete,
    open_container,
    undecodable,
)
from ..errors import AudioError
from ..errors import TranscriptionCancelled as Cancelled


class AudioTooLong(Exception):
    def __init__(self, seconds: float | None) -> None:
        super().__init__(seconds)
        self.seconds = seconds  # the declared duration; None when found out while decoding


_SCALE = np.float32(1 / 32768)


def decode_limited(
    path: Path, label: str, max_seconds: float, cancel: threading.Event
) -> npt.NDArray[np.float32]:
    """16 kHz mono float32 samples of ``path``, as :func:`malsori.audio.load_audio` decodes
    them, or AudioTooLong / AudioError / Cancelled."""
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{label}: file is empty (0 bytes)")
    with open(path, "rb") as fh:
        _check_wav_header(fh, label, size)
    limit = int(max_seconds * SAMPLE_RATE)
    buf = np.empty(0, dtype=np.float32)
    n = 0
    try:
        with open_container(str(path), label) as container:
            if not container.streams.audio:
                raise AudioError(f"{label}: contains no audio stream")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream, path)
            if declared is not None and declared > max_seconds + 0.5:
                raise AudioTooLong(declared)
            guess = int((declared or 60.0) * SAMPLE_RATE) + SAMPLE_RATE
            buf.resize(min(limit, guess), refcheck=False)
            # the same downmix and packet reader as load_audio (damaged packets skipped,
            # a video's late audio in place, inverted-polarity stereo heard)
            mix = Downmix(stream, label)
            for piece in mix.decode():
                if cancel.is_set():
                    raise Cancelled
                n = _append(buf, n, piece, limit)
    except (AudioError, AudioTooLong, Cancelled):
        buf.resize(0, refcheck=False)  # the traceback keeps this frame: free the samples now
        raise
    except av.FFmpegError as exc:
        raise undecodable(label, exc) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AudioError(f"{label}: could not be decoded ({reason})") from None
    if n == 0:
        raise AudioError(f"{label}: contains no audio samples (zero-length audio)")
    check_complete(label, declared, n / SAMPLE_RATE, mix.covered_seconds)
    buf.resize(n, refcheck=False)  # in place (realloc): no second copy
    return buf


def _append(buf: npt.NDArray[np.float32], n: int, pcm: npt.NDArray[Any], limit: int) -> int:
    """Scale 16-bit ``pcm`` into ``buf`` at ``n``; grow ``buf`` in place (realloc, so a
    large buffer is remapped, not copied); AudioTooLong past ``limit`` samples."""
    end = n + pcm.size
    if end > limit:
        raise AudioTooLong(None)
    if end > buf.size:
        buf.resize(min(limit, max(end, buf.size * 3 // 2)), refcheck=False)
    np.multiply(pcm, _SCALE, out=buf[n:end], casting="unsafe")
    return end
