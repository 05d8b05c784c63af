"""Live audio inputs, all as 16 kHz mono float32 chunks: the microphone (PortAudio through
``sounddevice``), anything FFmpeg decodes (a file or a URL, read at real-time pace through
PyAV), or raw PCM16 16 kHz mono on stdin.

``open_source(spec)`` picks one: None -> the default microphone; ``-`` -> stdin; an existing
path or a URL -> FFmpeg; anything else -> a microphone by number or name."""

from __future__ import annotations

import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE, Downmix, open_container
from ..errors import AudioError

log = logging.getLogger(__name__)

__all__ = ["FileSource", "LiveSource", "MicSource", "StdinSource", "open_source", "pcm16_to_float"]

Samples = npt.NDArray[np.float32]
CHUNK_S = 0.1
_SCALE = np.float32(1 / 32768)


def pcm16_to_float(data: bytes) -> Samples:
    """Little-endian signed 16-bit samples -> float32 in [-1, 1)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) * _SCALE


class LiveSource(Protocol):
    name: str

    def chunks(self) -> Iterator[Samples]: ...

    def close(self) -> None: ...


class FileSource:
    """A file or stream URL decoded by FFmpeg (PyAV) and paced to real time (``-re``)."""

    def __init__(self, location: str, *, realtime: bool = True) -> None:
        import av

        self.name = location
        self.realtime = realtime
        self._closed = threading.Event()
        if "://" not in location:
            path = Path(location)
            if path.is_dir():
                raise AudioError(f"{location}: is a directory")
            if path.stat().st_size == 0:
                raise AudioError(f"{location}: file is empty (0 bytes)")
        try:
            if "://" in location:  # a stream URL: what FFmpeg reads (HLS radio, RTSP...)
                self._container: Any = av.open(location, mode="r", metadata_errors="ignore")
            else:  # a file: an audio or video container, never a playlist of other files
                self._container = open_container(location, location)
        except av.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise AudioError(f"{location}: cannot be opened ({reason})") from None
        if not self._container.streams.audio:
            self._container.close()
            raise AudioError(f"{location}: contains no audio stream")

    def chunks(self) -> Iterator[Samples]:
        import av

        stream = self._container.streams.audio[0]
        mix = Downmix(stream, self.name)  # as files are mixed (inverted stereo too)
        t0 = time.monotonic()
        sent = 0
        try:
            for out in mix.decode():
                samples = out.astype(np.float32) * _SCALE
                for i in range(0, len(samples), int(CHUNK_S * SAMPLE_RATE)):
                    if self._closed.is_set():
                        return
                    piece = samples[i : i + int(CHUNK_S * SAMPLE_RATE)]
                    if self.realtime:  # send it once it has been "spoken"
                        due = t0 + (sent + len(piece)) / SAMPLE_RATE
                        delay = due - time.monotonic()
                        if delay > 0:
                            self._closed.wait(delay)
                    sent += len(piece)
                    yield piece
        except av.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise AudioError(f"{self.name}: decoding failed ({reason})") from None

    def close(self) -> None:
        self._closed.set()


#: Below this many bytes (0.5 s of audio) an odd count means the input is not PCM16 at all;
#: above it, the transcript of what came before is kept (only the last byte is left out).
_ODD_REFUSED_BELOW = SAMPLE_RATE


def _container_kind(head: bytes) -> str | None:
    """What a file format's first bytes say it is (None: nothing known, maybe raw PCM)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "a WAV file"
    known = {b"ID3": "an MP3 file", b"fLaC": "a FLAC file", b"OggS": "an Ogg file",
             b"\x1aE\xdf\xa3": "a Matroska/WebM file", b"FORM": "an AIFF file",
             b"#!AMR": "an AMR file"}  # fmt: skip
    for magic, kind in known.items():
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "an MP4/M4A file"
    return None


class StdinSource:
    """Raw PCM16 little-endian 16 kHz mono on a binary stream (paced by its writer).

    The first bytes are read when it is opened (before the model loads): empty input or an
    audio file (WAV, MP3, FLAC, Ogg, WebM, MP4: raw PCM only) is refused at once. An odd byte
    count is refused at the end when the input was short (under 0.5 s: not PCM16 at all);
    after longer input it is a warning and the transcript is kept."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.name = "stdin"
        self._stream = stream or sys.stdin.buffer
        self._closed = False
        self._fd = self._stream.fileno()
        head = b""
        while len(head) < 12 and (data := os.read(self._fd, 12 - len(head))):
            head += data
        if not head:
            raise AudioError("stdin: no audio (0 bytes); pipe raw PCM16 16 kHz mono into --input -")
        kind = _container_kind(head)
        if kind is not None:
            raise AudioError(
                f"stdin: this is {kind}, but --input - reads raw PCM16 16 kHz mono; "
                "give the file as --input FILE, or convert it: "
                "ffmpeg -i FILE -f s16le -ac 1 -ar 16000 -"
            )
        self._head = head

    def _read(self, size: int) -> bytes | None:
        """Up to ``size`` bytes; b"" at the end; None once closed (checked every 0.1 s, so
        that a stop does not wait for a writer that sends nothing)."""
        while not self._closed:
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.1)
            except (OSError, ValueError):  # not selectable (a regular file): read
                ready = [self._fd]
            if ready:
                return os.read(self._fd, size)
        return None

    def chunks(self) -> Iterator[Samples]:
        size = int(CHUNK_S * SAMPLE_RATE) * 2
        rest, self._head = self._head, b""
        total = len(rest)
        while (data := self._read(size)) is not None and data:
            total += len(data)
            data = rest + data
            cut = len(data) - len(data) % 2
            rest = data[cut:]
            if cut:
                yield pcm16_to_float(data[:cut])
        if self._closed:
            return
        if len(rest) >= 2:
            yield pcm16_to_float(rest)
        if total % 2 and total < _ODD_REFUSED_BELOW:
            raise AudioError(
                f"stdin: {total} bytes, an odd count: not PCM16 (2 bytes per sample); "
                "--input - reads raw PCM16 16 kHz mono"
            )
        if total % 2:  # a writer stopped mid-sample (arecord, ffmpeg killed by the same ^C)
            log.warning(
                "stdin ended with half a sample (%d bytes, an odd count); its last byte is "
                "left out",
                total,
            )

    def close(self) -> None:
        self._closed = True


class MicSource:
    """A microphone through PortAudio (``sounddevice``); ``device`` is a number or a name
    (``python -m sounddevice`` lists them); None is the system default."""

    def __init__(self, device: str | None = None) -> None:
        self.name = f"microphone {device}" if device else "the default microphone"
        try:
            import sounddevice as sd
        except ImportError:
            raise AudioError(
                "microphone input needs the live extra: pip install -e '.[live]'"
            ) from None
        except OSError:  # sounddevice raises it when libportaudio is missing
            raise AudioError(
                "microphone input needs PortAudio, which is not installed "
                "(Debian/Ubuntu: apt-get install libportaudio2); or use --input FILE|URL|-"
            ) from None
        self._sd: Any = sd
        self._queue: queue.Queue[Samples | None] = queue.Queue()
        dev: int | str | None = int(device) if device and device.isdigit() else device
        try:
            if not any(d["max_input_channels"] > 0 for d in sd.query_devices()):
                raise AudioError("no audio input device found (no microphone); "
                                 "use --input FILE|URL|- instead")  # fmt: skip
            self._stream: Any = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="float32",
                blocksize=int(CHUNK_S * SAMPLE_RATE),
                device=dev,
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioError(f"cannot open {self.name}: {exc}") from None

    def _callback(self, data: Any, frames: int, when: Any, status: Any) -> None:
        self._queue.put(np.array(data[:, 0], dtype=np.float32))

    def chunks(self) -> Iterator[Samples]:
        self._stream.start()
        while (chunk := self._queue.get()) is not None:
            yield chunk

    def close(self) -> None:
        self._queue.put(None)
        try:
            self._stream.stop()
            self._stream.close()
        except self._sd.PortAudioError:
            pass


def open_source(spec: str | None, *, realtime: bool = True) -> LiveSource:
    if spec == "-":
        return StdinSource()
    if spec is not None and ("://" in spec or os.path.exists(spec)):
        return FileSource(spec, realtime=realtime)
    if spec is not None and ("/" in spec or "." in Path(spec).name):
        raise AudioError(f"{spec}: no such file")
    return MicSource(spec)
