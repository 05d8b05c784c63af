"""One live transcription: audio in (``feed``, any thread), events out (``emit``, from the
thread that calls ``process``).

Silence costs nothing: Silero VAD (``vad.py``) opens an utterance when speech starts and
closes it at a pause; only an open utterance is decoded. While it is open, its growing
buffer is re-decoded (greedy; word timestamps; the prompt is the
utterance's text already cut from the buffer) whenever ``min_chunk_s`` of new audio has
arrived and the previous decode is done, and words are
confirmed by LocalAgreement-2 (``policy.py``). The buffer is cut at a confirmed segment end
once it is longer than ``trim_s`` (never longer than ``max_buffer_s``: past that the
pending words are confirmed and cut). A pending word more than ``stable_after_s`` before
the end of the audio is confirmed without agreement (this bounds the latency when two
hypotheses keep differing in one early word), and at the pause every pending word is.

When an utterance has ended, its whole audio (up to ``final_pass_s``) is decoded once more
as ``malsori transcribe`` would (beam 5 for Korean): that is its ``UtteranceDone`` text
and the session transcript. The final pass waits until the next utterance has had its
first decode, so it never delays the next first words.

Each decode covers all the audio received when it starts, so a slow machine decodes larger
steps less often instead of queueing: the lag (audio received but not yet decoded) stays
about one decode long. When it passes ``max_lag_s`` anyway (several sessions on few
cores), the session switches to a cheaper setting (shorter buffer, fewer decodes) until it
has caught up, and reports the lag with every update."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE
from ..engine import LoadedModel
from ..pipeline import LANGUAGE_BEAMS
from ..transcript import Segment, Transcript, Word
from .policy import HypothesisBuffer, TimedWord, cut_repetition
from .vad import FRAME, SpeechDetector, TurnDetection

__all__ = [
    "LiveError",
    "LiveEvent",
    "LiveOptions",
    "LiveSession",
    "LiveStats",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "UtteranceDone",
]

Samples = npt.NDArray[np.float32]
_SENTENCE_END = (".", "?", "!", "。", "？", "！")
_PROMPT_CHARS = 200
_MAX_NEW_TOKENS = 220  # + a prompt of at most 223 tokens (faster-whisper) <= 448
_VAD_BLOCK = 160  # frames (~5 s) the VAD scores at once
_COMMIT, _CLEAR = "commit", "clear"  # marks in the input stream
_MAX_WAITING = 2  # closed utterances waiting for their final pass
#: An utterance whose language differs from the one spoken before it is decoded in its own
#: language only when Whisper gives that language at least this probability.
_LANGUAGE_SWITCH_P = 0.8
#: Audio before an utterance's prefix padding that its final pass hears too.
_LOOKBACK_MS = 500


@dataclass(frozen=True)
class LiveOptions:
    language: str | None = None
    #: 0 = automatic, as malsori's default: beam 5 for Korean (CER 14.1% instead of 17.8%
    #: on the long Korean file, docs/benchmarks.md), greedy for other languages — in the
    #: final pass; the streaming decodes are then greedy (beam 5 for Korean without a
    #: final pass). A positive value applies to every decode.
    beam_size: int = 0
    #: Text that comes before the session (names, vocabulary), as Whisper's initial prompt.
    prompt: str | None = None
    min_chunk_s: float = 1.0
    #: The first decode of an utterance, once its buffer (prefix padding included) is this
    #: long: the first partial comes sooner.
    first_chunk_s: float = 0.6
    trim_s: float = 15.0
    max_buffer_s: float = 25.0
    max_lag_s: float = 4.0
    #: A pending word this far before the end of the audio is confirmed without waiting for
    #: agreement (two hypotheses that keep differing in one early word would otherwise hold
    #: back everything after it).
    stable_after_s: float = 3.0
    #: An utterance up to this long is decoded once more, whole, when it closes (the
    #: streaming decodes saw it in growing, trimmed pieces); that text is the utterance's
    #: ``completed`` transcript and the session's. Skipped while the session lags. 0 = off.
    final_pass_s: float = 30.0
    turn: TurnDetection = field(default_factory=TurnDetection)


@dataclass(frozen=True)
class SpeechStarted:
    item: str
    start: float  #: session seconds, prefix padding included


@dataclass(frozen=True)
class TextDelta:
    item: str
    text: str  #: newly confirmed text (may be empty when only the partial changed)
    partial: str  #: the unconfirmed rest of the latest hypothesis
    lag: float  #: seconds of received audio the decode that produced this had not seen


@dataclass(frozen=True)
class SpeechStopped:
    item: str
    end: float


@dataclass(frozen=True)
class UtteranceDone:
    item: str
    text: str
    start: float
    end: float
    words: list[TimedWord]
    language: str


@dataclass(frozen=True)
class LiveError:
    code: str
    message: str


@dataclass(frozen=True)
class Cleared:
    """A clear was carried out, at its place in the stream: after the events of what came
    before it (a commit sent just before a clear is ``committed`` first)."""


LiveEvent = SpeechStarted | TextDelta | SpeechStopped | UtteranceDone | LiveError | Cleared


@dataclass(frozen=True)
class _Closed:
    """An utterance that has ended and waits for its final pass."""

    item: str
    start: float
    end: float
    words: list[TimedWord]  # confirmed while streaming
    language: str | None
    audio: Samples | None  # the whole utterance (None: too long for a final pass)
    audio_start: float = 0.0  # session seconds of audio[0] (a little before ``start``)
    probability: float = 0.0  # of ``language``, from the streaming decodes


@dataclass
class LiveStats:
    decodes: int = 0
    decode_seconds: float = 0.0
    #: (session seconds when the decode finished, lag in seconds), one per decode
    lags: list[tuple[float, float]] = field(default_factory=list)
    degraded_decodes: int = 0
    #: utterances decoded again whole when they closed (``LiveOptions.final_pass_s``)
    final_passes: int = 0
    #: the languages the utterances were decoded in, in the order first heard
    languages: list[str] = field(default_factory=list)

    @property
    def max_lag(self) -> float:
        return max((lag for _, lag in self.lags), default=0.0)


def new_item_id() -> str:
    return "item_" + uuid.uuid4().hex[:20]


class LiveSession:
    def __init__(
        self,
        loaded: LoadedModel,
        options: LiveOptions | None = None,
        emit: Callable[[LiveEvent], None] | None = None,
        *,
        on_decode: Callable[[], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.options = options or LiveOptions()
        self.emit: Callable[[LiveEvent], None] = emit or (lambda event: None)
        self.on_decode = on_decode
        # The language being decoded: given, or found again for each utterance (a speaker
        # who goes from English to Korean is heard in Korean), with the language spoken so
        # far kept when an utterance's own is unsure (_LANGUAGE_SWITCH_P).
        self.language = self.options.language if loaded.is_multilingual else "en"
        self.language_probability = 1.0 if self.language else 0.0
        self._spoken_language: str | None = self.language  # the last utterance's
        self._streaming_p = self.language_probability
        self.stats = LiveStats()
        self.segments: list[Segment] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # audio and, at their places in the stream, commits (_COMMIT) and clears (_CLEAR)
        self._pending: list[Samples | str] = []
        self._backlog = 0  # samples in _pending
        self._taken = 0  # samples taken by the running process(), not yet done
        self._marks = 0  # commits and clears in _pending
        self._processing = False
        self._fed = 0  # samples received
        self._seen = 0  # samples through the VAD
        self._carry: Samples = np.zeros(0, dtype=np.float32)
        self._vad = SpeechDetector(self.options.turn)
        turn = self.options.turn
        self._stream_frames = (
            turn.prefix_padding_ms + turn.min_speech_ms
        ) * SAMPLE_RATE // 1000 // FRAME + 2
        keep = self._stream_frames + _LOOKBACK_MS * SAMPLE_RATE // 1000 // FRAME
        self._preroll: deque[Samples] = deque(maxlen=keep)
        self._buffer: list[Samples] = []
        self._buffer_len = 0
        self._decoded_len = 0  # buffer samples the last decode saw
        self._offset = 0.0  # session seconds of the buffer's first sample
        self._hyp = HypothesisBuffer()
        self._item: str | None = None
        self._item_start = 0.0
        self._item_words: list[TimedWord] = []
        # the open utterance's audio from its start, for the final pass (None: too long)
        self._whole: list[Samples] | None = None
        self._whole_len = 0
        self._whole_start = 0.0  # session seconds of the first sample of _whole
        self._closed: deque[_Closed] = deque()  # ended utterances, oldest first
        self._degraded = False
        self._aborted = threading.Event()

    # --- input (any thread) ---------------------------------------------------------------

    def feed(self, samples: Samples) -> None:
        """16 kHz mono float32 samples, in order."""
        if not len(samples):
            return
        with self._wake:
            self._pending.append(np.asarray(samples, dtype=np.float32))
            self._fed += len(samples)
            self._backlog += len(samples)
            self._wake.notify_all()

    @property
    def backlog_seconds(self) -> float:
        """Audio fed but not yet transcribed: waiting, or taken by the running ``process``
        (a client that sends faster than the session decodes makes it grow; the server
        bounds it, MALSORI_LIVE_MAX_BACKLOG_S). (Counting only the waiting audio let a
        client keep twice the bound un-transcribed: process takes all that waits at once.)"""
        with self._lock:
            return (self._backlog + self._taken) / SAMPLE_RATE

    def commit(self) -> None:
        """Close the open utterance (``input_audio_buffer.commit``) at this point of the
        stream: after the audio fed before it, before the audio fed after it."""
        self._mark(_COMMIT)

    def clear(self) -> None:
        """Discard the open utterance at this point of the stream, without a transcript
        (``input_audio_buffer.clear``)."""
        self._mark(_CLEAR)

    def _mark(self, mark: str) -> None:
        with self._wake:
            self._pending.append(mark)
            self._marks += 1
            self._wake.notify_all()

    def abort(self) -> None:
        """Stop work at the next frame or decode (the client is gone): a ``process`` call in
        progress returns after at most the decode it is in, whatever audio is still queued."""
        self._aborted.set()
        self.commit_wakeup()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def commit_wakeup(self) -> None:
        """Wake a thread blocked in ``wait`` (the input ended)."""
        with self._wake:
            self._wake.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block until there is work for ``process`` (True) or ``timeout`` passes."""
        with self._wake:
            if not self._work_ready():
                self._wake.wait(timeout)
            return self._work_ready()

    def _work_ready(self) -> bool:
        if self._marks or self._final_pass_due():
            return True
        pending = sum(len(p) for p in self._pending) + len(self._carry)
        if self._item is None:
            return pending >= FRAME
        return pending + self._buffer_len - self._decoded_len >= self._min_chunk() * SAMPLE_RATE

    @property
    def received_seconds(self) -> float:
        return self._fed / SAMPLE_RATE

    @property
    def in_utterance(self) -> bool:
        return self._item is not None

    # --- the work (one thread) ------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Audio received but not processed yet, or a ``process`` call running."""
        with self._lock:
            return self._processing or bool(self._pending) or bool(self._closed)

    def process(self) -> None:
        """Run the VAD over the audio received so far, open and close utterances, decode."""
        with self._lock:
            items, self._pending = self._pending, []
            self._marks = 0
            self._taken, self._backlog = self._backlog, 0
            self._processing = True
        try:
            self._process(items)
        finally:
            with self._lock:
                self._processing = False
                self._taken = 0

    def _process(self, items: list[Samples | str]) -> None:
        chunks: list[Samples] = []
        for item in items:
            if self._aborted.is_set():
                return
            if isinstance(item, str):  # a commit or a clear, after the audio before it
                if chunks:
                    self._vad_frames(np.concatenate([self._carry, *chunks]))
                    chunks = []
                if item == _COMMIT:
                    self._commit_now()
                else:
                    self._clear_now()
            else:
                chunks.append(item)
        if chunks:
            self._vad_frames(np.concatenate([self._carry, *chunks]))
        if self._item is not None and (
            self._buffer_len - self._decoded_len >= self._min_chunk() * SAMPLE_RATE
        ):
            self._decode(final=False)
        elif self._final_pass_due():
            # The final pass waits while the open utterance has audio to decode, and until
            # the next utterance has had its first decode: its first words come first. More
            # than _MAX_WAITING waiting (no pause for them) or a lagging session: the
            # oldest keeps its streamed words.
            self._complete()
        while len(self._closed) > _MAX_WAITING:
            self._complete(run_pass=False)

    def _commit_now(self) -> None:
        if self._item is None:
            self.emit(LiveError("input_audio_buffer_commit_empty", "no speech to commit"))
            return
        self._close(self._seen / SAMPLE_RATE)
        # The turn ends here: a new item opens only on new speech (``min_speech_ms`` of it,
        # with the prefix padding before it), not on the pause that follows the commit.
        self._vad.end_turn()

    def _clear_now(self) -> None:
        """Drop the open utterance and its audio; the VAD starts afresh."""
        self._item = None
        self._whole, self._whole_len = None, 0
        self._buffer, self._buffer_len, self._decoded_len = [], 0, 0
        self._preroll.clear()
        self._seen += len(self._carry)  # dropped, but it was received: times stay right
        self._carry = np.zeros(0, dtype=np.float32)
        self._vad = SpeechDetector(self.options.turn)
        self._hyp.reset(self._seen / SAMPLE_RATE)
        self.emit(Cleared())

    def finish(self) -> None:
        """The input ended: process what is left, close the open utterance and hand out
        every closed one."""
        self.process()
        if self._item is not None:
            self._close(self._seen / SAMPLE_RATE)
        while self._closed:
            self._complete()

    def _vad_frames(self, audio: Samples) -> None:
        n = len(audio) // FRAME
        self._carry = audio[n * FRAME :].copy()
        # In blocks of ~5 s, so that a long backlog stops soon after ``abort``.
        for first in range(0, n, _VAD_BLOCK):
            if self._aborted.is_set():
                return
            count = min(_VAD_BLOCK, n - first)
            block = audio[first * FRAME : (first + count) * FRAME].reshape(count, FRAME)
            self._vad_block(block)

    def _vad_block(self, frames: Samples) -> None:
        probabilities = self._vad.probabilities(frames)
        silence_s = self.options.turn.silence_duration_ms / 1000
        for frame, p in zip(frames, probabilities, strict=True):
            if self._aborted.is_set():
                return
            change = self._vad.update(float(p))
            self._seen += FRAME
            now = self._seen / SAMPLE_RATE
            if self._item is None:
                self._preroll.append(frame)
                if change == "start":
                    self._open(now)
            else:
                self._append(frame)
                if change == "stop":
                    end = now - silence_s
                    # keep 0.3 s of the pause: Whisper hears the sentence end
                    self._truncate(end + 0.3)
                    self._close(end)

    def _open(self, now: float) -> None:
        self._item = new_item_id()
        before = list(self._preroll)
        self._buffer = before[-self._stream_frames :]
        self._buffer_len = sum(len(f) for f in self._buffer)
        self._preroll.clear()
        self._offset = now - self._buffer_len / SAMPLE_RATE
        self._item_start = self._offset
        self._decoded_len = 0
        self._item_words = []
        # The final pass also hears _LOOKBACK_MS more of what came before: a soft first word
        # the VAD did not count as speech ("ask" of "ask not") is in it.
        self._whole = before if self.options.final_pass_s > 0 else None
        self._whole_len = sum(len(f) for f in before)
        self._whole_start = now - self._whole_len / SAMPLE_RATE
        self._hyp.reset(self._offset)
        if self.options.language is None and self.loaded.is_multilingual:
            self.language = None  # found again from this utterance's first decodes
        self.emit(SpeechStarted(self._item, self._offset))

    def _append(self, frame: Samples) -> None:
        self._buffer.append(frame)
        self._buffer_len += len(frame)
        if self._whole is not None:
            self._whole.append(frame)
            self._whole_len += len(frame)
            if self._whole_len > self.options.final_pass_s * SAMPLE_RATE:
                self._whole = None  # too long to decode again at the end

    def _audio(self) -> Samples:
        if len(self._buffer) != 1:
            joined = np.concatenate(self._buffer) if self._buffer else np.zeros(0, np.float32)
            self._buffer = [joined]
        return self._buffer[0]

    def _truncate(self, until: float) -> None:
        keep = max(0, int((until - self._offset) * SAMPLE_RATE))
        if keep < self._buffer_len:
            self._buffer = [self._audio()[:keep]]
            self._buffer_len = keep

    def _cut(self, at: float) -> None:
        """Drop the buffer's audio before ``at`` (session seconds)."""
        drop = int((at - self._offset) * SAMPLE_RATE)
        if drop <= 0:
            return
        self._buffer = [self._audio()[drop:].copy()]
        self._buffer_len -= drop
        self._decoded_len = max(0, self._decoded_len - drop)
        self._offset += drop / SAMPLE_RATE
        self._hyp.pop_committed(self._offset)

    def _close(self, end: float) -> None:
        assert self._item is not None
        item = self._item
        if self._buffer_len > self._decoded_len:
            self._decode(final=True)
        else:
            forced = self._hyp.force()
            self._confirm(forced)
            if forced:
                self.emit(TextDelta(item, "".join(w.text for w in forced), "", 0.0))
        self.emit(SpeechStopped(item, end))
        audio: Samples | None = None
        if self._whole is not None and self._whole:
            audio = np.concatenate(self._whole)
            audio = audio[: max(0, int((end + 0.3 - self._whole_start) * SAMPLE_RATE))]
        self._closed.append(
            _Closed(
                item,
                self._item_start,
                end,
                list(self._item_words),
                self.language,
                audio,
                self._whole_start,
                self._streaming_p if self.language is not None else 0.0,
            )
        )
        self._item = None
        self._whole, self._whole_len = None, 0
        self._buffer, self._buffer_len, self._decoded_len = [], 0, 0
        self._hyp.reset(end)

    # --- decoding -------------------------------------------------------------------------

    def _min_chunk(self) -> float:
        if self._decoded_len == 0:
            return self.options.first_chunk_s
        return self.options.min_chunk_s * (2 if self._degraded else 1)

    def _prompt(self) -> str | None:
        parts: list[str] = []
        size = 0
        # Only this utterance's words cut from the buffer: earlier utterances as a prompt
        # make Whisper continue past the speech (measured: base on Korean wrote "이 영상은
        # 영상에서 ..." after most utterances with them, never without).
        for word in reversed(self._item_words):
            if word.end > self._offset + 0.01:
                continue
            parts.append(word.text)
            size += len(word.text)
            if size >= _PROMPT_CHARS:
                break
        text = "".join(reversed(parts)).strip()
        if self.options.prompt and size < _PROMPT_CHARS:
            text = f"{self.options.prompt.strip()} {text}".strip()
        return text or None

    def _beam(self, language: str | None, *, final: bool) -> int:
        """``beam_size``, or automatic (0): the pipeline's beam for the language (5 for
        Korean, greedy otherwise) — for the streaming decodes only when there is no final
        pass (with one, they are greedy: their words are replaced by the final pass's, and
        greedy gets them out sooner)."""
        if self.options.beam_size:
            return self.options.beam_size
        if not final and self.options.final_pass_s > 0:
            return 1
        return LANGUAGE_BEAMS.get(language or "", 1)

    def _transcribe(
        self, audio: Samples, prompt: str | None, language: str | None, *, final: bool = False
    ) -> tuple[list[Any], Any]:
        segments, info = self.loaded.model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=self._beam(language, final=final),
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            word_timestamps=True,
            vad_filter=False,
            compression_ratio_threshold=None,
            log_prob_threshold=None,
            no_speech_threshold=None,
            # A decoder caught in a loop writes until the context is full (seconds of work):
            # no real speech has more than ~12 tokens a second.
            max_new_tokens=min(_MAX_NEW_TOKENS, 16 + int(12 * len(audio) / SAMPLE_RATE)),
        )
        return list(segments), info

    def _decode(self, *, final: bool) -> None:
        assert self._item is not None
        if self._aborted.is_set():
            return
        audio = self._audio()
        self._decoded_len = len(audio)
        t0 = time.perf_counter()
        segments, info = self._transcribe(audio, self._prompt(), self.language)
        elapsed = time.perf_counter() - t0
        if self.on_decode is not None:
            self.on_decode()
        if self.language is None and (
            info.language_probability >= 0.5 or len(audio) >= 3 * SAMPLE_RATE or final
        ):
            self._settle_language(str(info.language), float(info.language_probability))
        words, ends = _timed_words(segments, self._offset)
        lag = max(0.0, self.received_seconds - (self._offset + len(audio) / SAMPLE_RATE))
        self.stats.decodes += 1
        self.stats.decode_seconds += elapsed
        self.stats.lags.append((self.received_seconds, lag))
        if self._degraded:
            self.stats.degraded_decodes += 1
        if lag > self.options.max_lag_s:
            self._degraded = True
        elif lag < self.options.max_lag_s / 2:
            self._degraded = False

        self._hyp.insert(words)
        confirmed = self._hyp.flush()
        if final:
            confirmed += self._hyp.force()
        else:
            end = self._offset + len(audio) / SAMPLE_RATE
            confirmed += self._hyp.force(until=end - self.options.stable_after_s)
            confirmed += self._trim(ends)
        self._confirm(confirmed)
        partial = "" if final else "".join(w.text for w in self._hyp.pending)
        self.emit(TextDelta(self._item, "".join(w.text for w in confirmed), partial, lag))

    def set_language(self, language: str | None) -> None:
        """Decode in ``language`` from now on, or (None) find each utterance's language
        again (a client's ``session.update`` mid-session)."""
        with self._lock:
            self.options = replace(self.options, language=language)
            if language is not None:
                self.language = self._spoken_language = language
            elif self._item is None:
                self.language = None  # the next utterance finds its own

    def set_prompt(self, prompt: str | None) -> None:
        """The prompt of the utterances decoded from now on (``session.update``)."""
        with self._lock:
            self.options = replace(self.options, prompt=prompt)

    def _choose_language(self, detected: str, probability: float) -> str:
        """An utterance's language: the one detected, unless it differs from the language of
        the utterance before and Whisper is unsure of it (a short "OK" or a name is often
        heard as another language)."""
        previous = self._spoken_language
        if previous is not None and detected != previous and probability < _LANGUAGE_SWITCH_P:
            return previous
        return detected

    def _settle_language(self, detected: str, probability: float) -> None:
        """The open utterance's language for its streaming decodes, from their first seconds
        (its final pass hears it whole and may decide otherwise)."""
        self.language = self._choose_language(detected, probability)
        self._streaming_p = probability

    def _spoken(self, language: str, probability: float) -> None:
        """A completed utterance's language: what the next one is compared with."""
        self._spoken_language = language
        if not self.stats.languages:
            self.language_probability = probability  # the transcript's: the first one found
        if language not in self.stats.languages:
            self.stats.languages.append(language)

    def _final_pass_due(self) -> bool:
        """A closed utterance waits, and the open one (if any) has had its first decode."""
        return bool(self._closed) and (self._item is None or self._decoded_len > 0)

    def _complete(self, *, run_pass: bool = True) -> None:
        """Hand out the oldest closed utterance: decoded once more, whole (the final pass,
        when ``run_pass``, its audio was kept and the session does not lag), its transcript
        (``UtteranceDone``) and its segments."""
        done = self._closed.popleft()
        words = done.words
        # An utterance closed before its language was settled takes the language spoken
        # before it (not the next utterance's, nor a default that would steer the next).
        language = done.language or self._spoken_language
        probability = done.probability
        if (
            run_pass
            and done.audio is not None
            and len(done.audio) >= SAMPLE_RATE // 4
            and not self._degraded
            and not self._aborted.is_set()
        ):
            t0 = time.perf_counter()
            if self.options.language is None and self.loaded.is_multilingual:
                # Heard whole: the first seconds that chose the streaming language can
                # mislead (Korean after English was decoded as English).
                found, p, _ = self.loaded.model.detect_language(done.audio)
                language, probability = self._choose_language(found, p), p
            segments, _ = self._transcribe(done.audio, self.options.prompt, language, final=True)
            self.stats.final_passes += 1
            self.stats.decode_seconds += time.perf_counter() - t0
            if self.on_decode is not None:
                self.on_decode()
            words = _timed_words(segments, done.audio_start)[0] or words
        text = "".join(w.text for w in words).strip()
        if language is not None:
            self._spoken(language, probability)
        else:  # never settled (no final pass, nothing before it): a label, not a prior
            language = "en"
        start = min([done.start, *(w.start for w in words[:1])])  # the lookback's word
        self.emit(UtteranceDone(done.item, text, start, done.end, list(words), language))
        self._add_segments(words, language)

    def _trim(self, ends: list[float]) -> list[TimedWord]:
        """Cut the buffer at a confirmed segment end once it is long; past ``max_buffer_s``
        confirm the pending words up to a segment end (or all but the last 3 s) and cut."""
        length = self._buffer_len / SAMPLE_RATE
        trim_s = self.options.trim_s / (2 if self._degraded else 1)
        forced: list[TimedWord] = []
        if length > self.options.max_buffer_s:
            limit = ends[-2] if len(ends) > 1 else self._offset + length - 3.0
            forced = self._hyp.force(until=limit)
            self._cut(min(limit, self._hyp.last_committed_time) if forced else limit)
        elif length > trim_s:
            done = self._hyp.last_committed_time
            candidates = [e for e in ends[:-1] if e <= done + 0.01]
            if candidates:
                self._cut(max(candidates))
            elif self._item_words and self._item_words[-1].text.rstrip().endswith(_SENTENCE_END):
                self._cut(self._item_words[-1].end)
        return forced

    def _confirm(self, words: list[TimedWord]) -> None:
        self._item_words.extend(words)

    # --- the result -----------------------------------------------------------------------

    def _add_segments(self, words: list[TimedWord], language: str) -> None:
        """An utterance's words as segments: cut after sentence ends and at 15 s."""
        group: list[TimedWord] = []
        for i, word in enumerate(words):
            group.append(word)
            last = i == len(words) - 1
            long = group[-1].end - group[0].start >= 15.0
            if last or long or word.text.rstrip().endswith(_SENTENCE_END):
                text = "".join(w.text for w in group)
                if text.strip():
                    self.segments.append(
                        Segment(
                            id=len(self.segments),
                            start=round(group[0].start, 3),
                            end=round(group[-1].end, 3),
                            text=text,
                            words=[
                                Word(round(w.start, 3), round(w.end, 3), w.text, w.probability)
                                for w in group
                            ],
                            language=language,
                        )
                    )
                group = []

    def transcript(self) -> Transcript:
        """Everything confirmed so far, as a :class:`malsori.Transcript`."""
        return Transcript(
            segments=list(self.segments),
            language=(self.stats.languages or [self.language or "en"])[0],
            language_probability=self.language_probability,
            duration=self.received_seconds,
            model=self.loaded.name,
            options={
                "live": True,
                "language": self.options.language,
                "beam_size": self.options.beam_size,
            },
            processing_time=self.stats.decode_seconds,
        )


def _timed_words(segments: list[Any], offset: float) -> tuple[list[TimedWord], list[float]]:
    """faster-whisper segments of a decode -> its words and segment ends in session time
    (``offset`` = where the decoded audio starts), without text Whisper's silence rule
    calls made up, stopping at a repetition loop."""
    words: list[TimedWord] = []
    ends: list[float] = []
    for seg in segments:
        if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
            continue  # Whisper's own silence rule: text here is made up
        if seg.compression_ratio > 2.4:
            break  # a repetition loop: nothing from here on
        # a decode cut by max_new_tokens can end inside a character's bytes: its pieces
        # decode to U+FFFD ('말하자�' in a hostile tester's completed transcript)
        words.extend(
            TimedWord(offset + w.start, offset + w.end, w.word.replace("\ufffd", ""), w.probability)
            for w in seg.words or []
            if w.word.replace("\ufffd", "").strip()
        )
        ends.append(offset + seg.end)
    return cut_repetition(words), ends
