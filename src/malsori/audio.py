"""Audio input: decode anything FFmpeg (through PyAV) reads into 16 kHz mono float32, and
reject what is not usable audio with one :class:`AudioError` that says why."""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import av
import numpy as np
import numpy.typing as npt

from .errors import AudioError

SAMPLE_RATE = 16_000
#: Decoded audio shorter than this fraction of the duration its header declares is truncated.
_TRUNCATED_RATIO = 0.9

AudioSource = str | os.PathLike[str] | bytes | BinaryIO

log = logging.getLogger("malsori")


#: Data sizes that WAV writers put in the header when they stream to a pipe and cannot
#: go back to fix it: 0 and 0xFFFFFFFF (ffmpeg, most), 0x7FFFF000 (sox, libsndfile,
#: espeak-ng --stdout), 0x7FFFFFFF. Such a file is read to its end, not called truncated.
STREAMED_WAV_SIZES = frozenset({0, 0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF})


def check_audio_path(path: Path, label: str) -> None:
    """The checks a path passes before decoding (shared by :func:`load_audio` and the
    pipeline's block reader): it exists, is a readable non-empty file, and a WAV header
    does not promise more data than the file holds. Raises :class:`AudioError`."""
    try:
        st = path.stat()
    except OSError as exc:  # a name too long, a symlink loop: one line, never a traceback
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise AudioError(f"{label}: no such file") from None
        raise AudioError(f"{label}: {exc.strerror or type(exc).__name__}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(
            f"{label}: is a directory, not an audio file (a folder of recordings: "
            "malsori batch DIR -o OUT)"
        )
    if not os.access(path, os.R_OK):
        raise AudioError(f"{label}: permission denied")
    if stat.S_ISFIFO(st.st_mode):  # a pipe (<(...), /dev/stdin): read whole by load_audio
        return
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{label}: is a device or socket, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{label}: file is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            _check_wav_header(fh, label, st.st_size)
    except OSError as exc:
        raise AudioError(f"{label}: {exc.strerror or type(exc).__name__}") from None


def load_audio(source: AudioSource, *, name: str | None = None) -> npt.NDArray[np.float32]:
    """Decode ``source`` (a path, raw bytes or a binary file object) to 16 kHz mono float32.

    Raises :class:`AudioError` for a missing file, a directory, an empty file, data that is
    not audio, audio cut short (the header promises more than the file holds) and audio
    with no samples at all. ``name`` is used in messages for non-path sources.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        check_audio_path(path, label)
        if stat.S_ISFIFO(path.stat().st_mode):  # readable once: take it all, then decode
            with open(path, "rb") as fh:
                return load_audio(fh.read(), name=label)
        return _decode(str(path), label)
    if isinstance(source, bytes):
        label = name or "<bytes>"
        if not source:
            raise AudioError(f"{label}: input is empty (0 bytes)")
        buf = io.BytesIO(source)
        _check_wav_header(buf, label, len(source))
        return _decode(buf, label)
    check_audio_source(source)
    label = name or getattr(source, "name", None) or "<stream>"
    data = source.read()
    return load_audio(bytes(data), name=str(label))


def check_audio_source(source: object) -> None:
    """:class:`AudioError` for what is not a path, bytes or a binary file object (``None``,
    a number, a text file: an ``AttributeError`` or a ``TypeError`` deep in the decoder)."""
    if isinstance(source, str | os.PathLike | bytes):
        return
    if not callable(getattr(source, "read", None)) or isinstance(source, io.TextIOBase):
        raise AudioError(
            f"audio must be a path, bytes, a binary file object or a 16 kHz float32 array, "
            f"got {type(source).__name__}"
        )


def _check_wav_header(fh: BinaryIO, label: str, file_size: int) -> None:
    """For RIFF/WAVE input, compare the data chunk's declared size with the bytes present.

    FFmpeg silently decodes what is there, so a WAV cut short would otherwise pass as a
    shorter recording.
    """
    head = fh.read(12)
    fh.seek(0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= file_size:
        fh.seek(offset)
        chunk = fh.read(8)
        if len(chunk) < 8:
            break
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            if size not in STREAMED_WAV_SIZES and offset + 8 + size > file_size:
                have = file_size - offset - 8
                fh.seek(0)
                raise AudioError(
                    f"{label}: truncated WAV file (header declares {size} bytes of audio, "
                    f"only {have} present)"
                )
            end = offset + 8 + size + (size & 1)
            if size not in STREAMED_WAV_SIZES and not _chunks_fill(fh, end, file_size):
                log.warning(
                    "%s: the WAV header declares %d bytes of audio, but %d more bytes follow "
                    "that are not a WAV chunk (a header not updated by the recorder?): only "
                    "the declared audio is transcribed",
                    label, size, file_size - end,
                )  # fmt: skip
            fh.seek(0)
            return
        offset += 8 + size + (size & 1)
    fh.seek(0)
    raise AudioError(f"{label}: truncated WAV file (it ends inside its header, before any audio)")


def _chunks_fill(fh: BinaryIO, offset: int, file_size: int) -> bool:
    """Are the bytes from ``offset`` to the end of a WAV file (what follows its data chunk)
    well-formed chunks (LIST, id3, cue...), or a few bytes of padding?"""
    while file_size - offset >= 8:
        fh.seek(offset)
        chunk = fh.read(8)
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if not all(32 <= b < 127 for b in cid) or offset + 8 + size > file_size:
            return False
        offset += 8 + size + (size & 1)
    return True


#: The FFmpeg demuxers malsori opens: audio and video containers (FFmpeg's names; "mov"
#: is MP4/M4A/3GP, "matroska" is MKV/WebM). Any other is refused before it runs. FFmpeg's
#: concat, HLS, DASH, SDP, image-sequence and similar demuxers open *other* files named
#: inside the input: an uploaded text file starting "ffconcat version 1.0" made the server
#: transcribe files under its temporary folder, and one naming a FIFO hung a worker.
DEMUXERS = (
    "wav", "w64", "mp3", "aac", "flac", "ogg", "matroska", "mov", "avi", "flv", "mpegts",
    "mpeg", "asf", "aiff", "au", "caf", "amr", "amrnb", "amrwb", "ac3", "eac3", "dts", "dtshd",
    "truehd", "mlp", "wv", "ape", "tta", "mpc", "mpc8", "tak", "shn", "voc", "gsm", "g722",
    "g729", "loas", "latm", "oma", "xwma", "dsf", "iff", "ircam", "nistsphere", "sox", "mxf",
    "dv", "nut",
)  # fmt: skip
_OPEN_OPTIONS = {"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file"}


def undecodable(label: str, exc: av.FFmpegError) -> AudioError:
    """The error for audio FFmpeg could not decode, in FFmpeg's words alone (``str(exc)``
    adds "[Errno 1094995529]" and the file's path)."""
    return AudioError(f"{label}: not a decodable audio file ({exc.strerror or type(exc).__name__})")


def open_container(source: str | BinaryIO, label: str) -> av.container.InputContainer:
    """``source`` opened for decoding with one of :data:`DEMUXERS` (an
    :class:`AudioError` for anything else)."""
    try:
        return av.open(source, mode="r", metadata_errors="ignore", options=_OPEN_OPTIONS)
    except av.FFmpegError as exc:
        if exc.errno == errno.EINVAL:  # refused by the format list (or a header FFmpeg rejects)
            raise AudioError(
                f"{label}: not a decodable audio file (not an audio or video format malsori "
                "reads, or a damaged header)"
            ) from None
        raise


#: A stereo recording whose channels' difference carries this many times the energy of
#: their sum has one channel wired with inverted polarity: mixed to mono, its speech
#: cancels out (an empty transcript). Ordinary stereo, even two different voices on the
#: two channels, stays near 1.
CANCELLING_RATIO = 10.0
#: ... once at least this much energy was heard (16-bit units squared, DC removed: 1 s at
#: about -44 dBFS), so that a quiet start decides nothing.
_CANCELLING_MIN_ENERGY = 16000 * 400.0**2
#: The warning is said once the difference has been used for this long (a hum in
#: opposite phase before the speech is taken as its difference for a moment, then the
#: speech, in phase, brings the sum back: nothing to say).
_CANCELLING_WARN_SAMPLES = 3 * SAMPLE_RATE


#: Damaged packets (a glitch in an MP3, a bad sector) are skipped as FFmpeg's command
#: line skips them, each replaced by silence of its length, with one warning; more than
#: this many, and more than :data:`DAMAGED_SHARE` of all packets, and the file is refused.
DAMAGED_PACKETS = 5
DAMAGED_SHARE = 0.01
#: A video's audio that starts later than its picture is preceded by silence up to its
#: start (subtitles stay in sync with the video), at most this many seconds of it.
MAX_LEAD_SECONDS = 24 * 3600.0
#: A jump in the audio packets' times larger than this is data the demuxer skipped (a
#: damaged Ogg page, FLAC frame): filled with silence so that later times stay right.
MAX_JITTER = 0.1
#: ... up to this many seconds; a larger jump is a timestamp discontinuity (a broadcast
#: capture's clock reset), not missing audio.
MAX_GAP = 600.0


def _silence(seconds: float) -> Iterator[npt.NDArray[np.int16]]:
    """``seconds`` of 16 kHz silence, a minute at a time."""
    total = round(seconds * SAMPLE_RATE)
    for at in range(0, total, 60 * SAMPLE_RATE):
        yield np.zeros(min(60 * SAMPLE_RATE, total - at), dtype=np.int16)


class Downmix:
    """Decoded frames of one audio stream -> 16 kHz mono int16 pieces, as FFmpeg mixes
    them, except for stereo whose channels cancel each other (:data:`CANCELLING_RATIO`):
    that is taken as the channels' difference, with one warning. :meth:`decode` reads the
    whole stream."""

    def __init__(self, stream: av.AudioStream, label: str) -> None:
        if stream.codec_context is None:  # FFmpeg has no decoder for its codec (a WAV
            # format tag it does not know): PyAV then has no layout, rate or decoder
            raise AudioError(
                f"{label}: its audio is in a format FFmpeg cannot decode (unknown codec); "
                "convert it to WAV, FLAC or MP3 with the program that made it"
            )
        self.stream = stream
        self.stereo = stream.layout.nb_channels == 2
        self.resampler = av.AudioResampler(
            format="s16", layout="stereo" if self.stereo else "mono", rate=SAMPLE_RATE
        )
        self.label = label
        self.sum_energy = self.difference_energy = 0.0
        #: the channels cancel (so far): their difference is used
        self.inverted = False
        self._inverted_samples = 0
        self._warned = False
        self._others_end = 0.0
        #: (sample format, channel layout, rate) of the frames the resampler was set up by
        self._shape: tuple[str, str, int] | None = None

    def _lead(self, first: float) -> float:
        """How long after the start of its video the audio starts (its first packet's time:
        Matroska may give the stream a start time of 0 all the same); 0 for audio files,
        where the audio is the timeline."""
        container = cast(av.container.InputContainer, self.stream.container)
        if not container.streams.video:
            return 0.0
        lead = first - (container.start_time or 0) / av.time_base
        if lead > MAX_LEAD_SECONDS:
            log.warning(
                "%s: the audio starts %.0f s after the video: times are counted from the "
                "start of the audio", self.label, lead,
            )  # fmt: skip
            return 0.0
        return lead if lead > 0.01 else 0.0

    @property
    def covered_seconds(self) -> float:
        """How far the file's other streams went (read by :meth:`decode`): a file whose
        picture goes on after its audio is not cut short (Matroska gives the audio track
        the whole file's duration as its own)."""
        return self._others_end

    def __call__(self, frame: av.AudioFrame | None) -> Iterator[npt.NDArray[np.int16]]:
        """The mono pieces of ``frame`` (None: flush the resampler at the end)."""
        if frame is not None:
            shape = (frame.format.name, frame.layout.name, frame.sample_rate)
            if self._shape is not None and shape != self._shape:
                # The rate or channels change mid-stream (MP3s of different rates joined,
                # a broadcast capture): PyAV's resampler refuses the frame (ValueError);
                # FFmpeg's command line reconfigures. Flush this one and start another.
                yield from self._pieces(None)
                self.stereo = frame.layout.nb_channels == 2
                self.resampler = av.AudioResampler(
                    format="s16", layout="stereo" if self.stereo else "mono", rate=SAMPLE_RATE
                )
            self._shape = shape
        yield from self._pieces(frame)

    def _pieces(self, frame: av.AudioFrame | None) -> Iterator[npt.NDArray[np.int16]]:
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            if not self.stereo:
                yield samples
                continue
            lr = samples.reshape(-1, 2).astype(np.int32)
            both, difference = lr[:, 0] + lr[:, 1], lr[:, 0] - lr[:, 1]
            # Energies over everything so far, without DC (opposite offsets on the two
            # channels are not speech), decided again for each piece: never latched.
            b = both - both.mean()
            d = difference - difference.mean()
            self.sum_energy += float(np.dot(b, b))
            self.difference_energy += float(np.dot(d, d))
            self.inverted = (
                self.difference_energy > _CANCELLING_MIN_ENERGY
                and self.difference_energy > CANCELLING_RATIO * self.sum_energy
            )
            if self.inverted:
                self._inverted_samples += len(both)
                if not self._warned and self._inverted_samples >= _CANCELLING_WARN_SAMPLES:
                    self._warned = True
                    log.warning(
                        "%s: the two channels cancel each other when mixed (one is wired "
                        "with inverted polarity); transcribing their difference instead",
                        self.label,
                    )
            picked = difference if self.inverted else both
            yield (picked // 2).astype(np.int16)

    def decode(self) -> Iterator[npt.NDArray[np.int16]]:
        """Every mono piece of the stream, in order, on the file's timeline: silence up to
        a video's late audio (its first packet's time), then the packets; a damaged packet
        (:data:`DAMAGED_PACKETS`), or a stretch the demuxer skipped (a jump in the packets'
        times), is silence of its length, with a warning. FFmpeg's errors other than a
        damaged packet propagate (``av.FFmpegError``); :class:`AudioError` when too much is
        damaged."""
        tracks = len(self.stream.container.streams.audio)
        if tracks > 1:  # a second language, a commentary: said, not silently left out
            log.warning(
                "%s: has %d audio tracks; transcribing the first (extract another with "
                "ffmpeg -map 0:a:1)", self.label, tracks,
            )  # fmt: skip
        packets = damaged = gaps = 0
        missing = 0.0
        first_error: av.FFmpegError | None = None
        time_base = self.stream.time_base
        container = cast(av.container.InputContainer, self.stream.container)
        origin: float | None = None  # the packet time of the first sample handed out
        # How far the timeline has come, in seconds: silence put in plus the decoded frames'
        # own durations. Not the samples handed out: the resampler holds some back, and
        # upsampling a 100 Hz file turns that into a false "missing audio" gap.
        heard = 0.0
        for packet in container.demux():
            if packet.stream.index != self.stream.index:  # only how far it goes
                if packet.pts is not None and packet.stream.time_base is not None:
                    end = (packet.pts + (packet.duration or 0)) * packet.stream.time_base
                    self._others_end = max(self._others_end, float(end))
                continue
            at = float(packet.pts * time_base) if packet.pts is not None and time_base else None
            pieces: list[npt.NDArray[np.int16]] = []
            if origin is None and at is not None:
                lead = self._lead(at)
                origin = at - lead
                heard += lead
                pieces += _silence(lead)
            elif at is not None and origin is not None:
                behind = at - (origin + heard)
                if behind > MAX_GAP or behind < -1.0:  # a timestamp discontinuity (MPEG-TS)
                    origin = at - heard  # is not missing audio: times go on
                elif behind > MAX_JITTER:  # the demuxer skipped damaged data: kept as silence
                    gaps += 1
                    missing += behind
                    heard += behind
                    pieces += _silence(behind)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:  # InvalidData, EPERM (AAC), ...: this packet
                damaged += 1
                first_error = first_error or exc
                if packet.duration and time_base is not None:
                    heard += float(packet.duration * time_base)
                    pieces += _silence(float(packet.duration * time_base))
                frames = []
            packets += packet.size > 0 and bool(frames)
            for frame in frames:
                audio = cast(av.AudioFrame, frame)
                heard += audio.samples / (audio.sample_rate or self.stream.rate or SAMPLE_RATE)
                pieces += self(audio)
            yield from pieces
        yield from self(None)  # the resampler's last samples
        if gaps:
            log.warning(
                "%s: %.2f s missing from the audio stream in %d place(s) (damaged data?): "
                "kept as silence, so later times stay right", self.label, missing, gaps,
            )  # fmt: skip
        if not damaged:
            return
        assert first_error is not None
        if not packets:  # nothing decodes: not audio FFmpeg can read
            raise undecodable(self.label, first_error)
        total = packets + damaged
        if damaged > DAMAGED_PACKETS and damaged > DAMAGED_SHARE * total:
            raise AudioError(
                f"{self.label}: damaged audio ({damaged} of {total} packets cannot be decoded; "
                "re-export it, or convert it with ffmpeg, which skips them)"
            )
        log.warning(
            "%s: %d damaged packet(s) of %d skipped (replaced by silence)",
            self.label, damaged, total,
        )  # fmt: skip


def _decode(source: str | BinaryIO, label: str) -> npt.NDArray[np.float32]:
    try:
        with open_container(source, label) as container:
            if not container.streams.audio:
                raise AudioError(f"{label}: contains no audio stream")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream, source)
            mix = Downmix(stream, label)
            chunks: list[npt.NDArray[Any]] = list(mix.decode())
    except AudioError:
        raise
    except av.FFmpegError as exc:
        raise undecodable(label, exc) from exc
    except (OSError, ValueError) as exc:
        raise AudioError(f"{label}: could not be decoded ({exc})") from exc
    if not chunks:
        raise AudioError(f"{label}: contains no audio samples (zero-length audio)")
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    if audio.size == 0:
        raise AudioError(f"{label}: contains no audio samples (zero-length audio)")
    check_complete(label, declared, audio.size / SAMPLE_RATE, mix.covered_seconds)
    return audio


def _declared_seconds(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    source: str | os.PathLike[str] | BinaryIO | None = None,
) -> float | None:
    """The duration the file's header states, or None when it states none. FFmpeg's
    duration of an ADTS AAC file, or of an MP3 without a Xing/Info/VBRI header, is a guess
    from the first frames' bitrate (a VBR file that starts with silence was "93 s" for
    13 s of audio), not a statement: None, so that neither the truncation check nor the
    duration limit acts on it (the limit is still enforced while decoding)."""
    if _duration_is_a_guess(container.format.name, source):
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    # The container's duration is its longest stream's (a Matroska video's audio may end
    # before its picture): Downmix.covered_seconds says how far the other streams went.
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def check_complete(label: str, declared: float | None, decoded: float, covered: float) -> None:
    """:class:`AudioError` for audio cut short: less than 90% of the duration the header
    declares was decoded, and no other stream of the file (a video's picture, a second
    audio track) went on to that point either (``covered``, :attr:`Downmix.covered_seconds`):
    the file itself ends early."""
    if (
        declared is not None
        and declared > 0.5
        and max(decoded, covered) < declared * _TRUNCATED_RATIO
    ):
        raise AudioError(
            f"{label}: truncated audio (header declares {declared:.2f} s, "
            f"only {decoded:.2f} s could be decoded)"
        )


def _duration_is_a_guess(fmt: str, source: str | os.PathLike[str] | BinaryIO | None) -> bool:
    if fmt == "aac":  # ADTS: frames only, no header with a length
        return True
    if fmt != "mp3":
        return False
    head = _mp3_first_frame(source)
    return head is not None and not any(tag in head for tag in (b"Xing", b"Info", b"VBRI"))


def _mp3_first_frame(source: str | os.PathLike[str] | BinaryIO | None) -> bytes | None:
    """The start of an MP3's first frame, past its ID3v2 tags and any padding (where a
    Xing/Info/VBRI header sits), or None when the source cannot be read again (a pipe)."""

    def read(fh: BinaryIO) -> bytes:
        where = fh.tell()  # FFmpeg may be reading the same file object: put it back
        try:
            skip = 0
            for _ in range(4):  # tags may follow each other
                fh.seek(skip)
                head = fh.read(10)
                if len(head) < 10 or head[:3] != b"ID3":
                    break
                size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
                skip += 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(skip)
            data = fh.read(65536)
            sync = re.search(rb"\xff[\xe0-\xff]", data)  # the first frame: 11 set bits
            start = sync.start() if sync else 0
            return data[start : start + 2048]
        finally:
            fh.seek(where)

    try:
        if source is None:
            return None
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as fh:
                return read(fh)
        if source.seekable():
            return read(source)
    except (OSError, ValueError):
        return None
    return None
