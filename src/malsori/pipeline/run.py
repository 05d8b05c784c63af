"""The pipeline, stage by stage:

audio blocks -> VAD regions -> windows -> encoder (one window per call)
-> language per window -> decoder (batched across windows, per language)
-> quality checks + fallback -> windows whose text is too short for their speech decoded
again piece by piece -> remainders of unfinished windows -> words
-> segments (time order), handed to the caller batch by batch.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..audio import SAMPLE_RATE, AudioSource
from ..errors import TranscriptionCancelled
from ..transcript import Segment, Word
from .assemble import RawSegment, split_by_timestamps
from .blocks import AudioStream, Samples
from .decode import Attempt, DecodeSetup
from .encode import Encoded, encode_windows, num_frames, stack
from .fallback import Thresholds, decode_with_fallback, failed, flags, is_silence, ladder
from .language import (
    MIXED,
    PLAUSIBLE,
    SURE,
    detect_languages,
    piece_languages,
    runs_from_pieces,
    split_by_language,
)
from .parallel import map_calls, split, workers_of
from .vad import StreamingVad
from .windows import Piece, Window, WindowPacker, pack, sub_window
from .words import align_words

#: Beam width per language when ``beam_size`` is automatic (0); others decode greedily.
#: Korean: greedy costs 4-5 CER points against beam 5 (docs/pipeline.md).
LANGUAGE_BEAMS: dict[str, int] = {"ko": 5}
#: Windows per pipeline batch: encoded, language-checked, decoded, then handed out.
BATCH_WINDOWS = 12
#: Windows in the first batch (the first segments arrive sooner).
FIRST_BATCH = 6
#: At most this many windows, and hypotheses (windows x beam), in one ``generate`` call:
#: each hypothesis holds a 36 MB cross-attention cache (base), so greedy decoding of 6
#: windows keeps the peak RSS within the pipeline's memory target (docs/benchmarks.md,
#: "Long-form pipeline"); beam 5 decodes 2 windows per call.
MAX_WINDOWS_PER_CALL = 6
MAX_HYPOTHESES = 10
#: ``align`` keeps every layer's attention over the whole text (Korean: up to 448 tokens).
ALIGN_WINDOWS_PER_CALL = 2
#: Re-decodes of an unfinished window's remainder.
MAX_DEPTH = 3
#: Text tokens per second of a window's speech under which its text is too short for it:
#: without timestamps the decoder may end a window after its first sentence or speaker
#: (35 s of seven Korean speakers gave one sentence, 0.6 tokens/s). Such a window is
#: decoded again piece by piece (see Pipeline._recover_short). Normal speech on the
#: evaluation files: English 2.6-4.4 tokens/s, Korean 3.8-5.3.
MIN_TOKEN_RATE: dict[str, float] = {"ko": 3.5}
DEFAULT_MIN_TOKEN_RATE = 2.0
#: Windows with less speech than this are not checked (a short "Yes." is not a loss).
MIN_CHECKED_SECONDS = 5.0
#: Text tokens per second of speech under which a window's segments are flagged
#: ``little_text`` (half the recovery's floor: slow English is 2.5 tokens/s).
LITTLE_TEXT_RATE = 1.0
#: Speech regions in a row (VAD padding included) that no aligned word falls in, after
#: which a window is decoded again region by region (with word timestamps only).
MIN_UNHEARD_SECONDS = 2.0
#: A window checked again is cut into at most this many runs of its speech regions, each
#: of at least this many seconds.
MAX_RECOVERY_PARTS = 8
MIN_PART_SECONDS = 2.0


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline needs from :class:`~malsori.options.DecodeOptions`."""

    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 0  # 0 = automatic (LANGUAGE_BEAMS, else greedy)
    best_of: int = 5
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    word_timestamps: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    batch_size: int = 8
    #: Decode Whisper's timestamp tokens (segments within a window, remainders decoded
    #: again) or not (one segment per window: faster, and more accurate on both long
    #: evaluation files, docs/pipeline.md).
    timestamps: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Windows in the first pipeline batch; each later batch doubles, up to batch_windows
    #: (segments are handed out batch by batch: smaller batches give earlier segments,
    #: larger ones more throughput).
    first_batch: int = FIRST_BATCH
    batch_windows: int = BATCH_WINDOWS

    def beam_for(self, language: str) -> int:
        if self.beam_size > 0:
            return self.beam_size
        return LANGUAGE_BEAMS.get(language, 1)


@dataclass(eq=False)  # identity: its fields hold numpy arrays (== would compare them)
class _Decoded:
    window: Window
    language: str
    probability: float
    encoded: Encoded
    attempt: Attempt
    segments: list[RawSegment]
    resume: float | None
    tail: RawSegment | None
    #: decoded again region by region already (stages 7b/8b): not checked again
    redone: bool = False


@dataclass
class PipelineState:
    """What the caller reads after (or during) the run."""

    duration: float = 0.0
    declared_duration: float | None = None
    language_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    language_probs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    windows: int = 0
    fallbacks: int = 0

    def language(self, default: str) -> tuple[str, float]:
        if not self.language_seconds:
            return default, 0.0
        lang = max(self.language_seconds, key=lambda k: self.language_seconds[k])
        probs = self.language_probs[lang]
        return lang, sum(probs) / len(probs)


class Pipeline:
    """Input: a loaded model (``malsori.engine.LoadedModel``) and a config; ``run(audio)``.
    Output: :class:`~malsori.transcript.Segment` s in time order, each batch as soon as it
    is decoded; ``state`` holds the duration and the languages seen."""

    def __init__(
        self,
        loaded: Any,
        config: PipelineConfig,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.fw = loaded.model  # faster_whisper.WhisperModel: its parts, not its transcribe
        whisper = self.fw.model  # ctranslate2.models.Whisper
        self.whisper = whisper if should_stop is None else _Stoppable(whisper, should_stop)
        self.multilingual = bool(self.whisper.is_multilingual)
        self.config = config
        self.setup = DecodeSetup(
            self.whisper,
            int(self.fw.max_length),
            config.initial_prompt,
            config.hotwords,
            timestamps=config.timestamps,
        )
        #: the same with timestamp tokens (windows decoded again, _recover_short)
        self._setup_ts = dataclasses.replace(self.setup, timestamps=True)
        self.state = PipelineState()
        self._tokenizers: dict[str, Any] = {}
        self._last_language: str | None = None
        self._alternatives: list[tuple[str, float]] = []
        self._next_id = 0

    def tokenizer(self, language: str) -> Any:
        """faster-whisper's Tokenizer for one language (cached)."""
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            self._tokenizers[language] = Tokenizer(
                self.fw.hf_tokenizer,
                self.multilingual,
                task=self.config.task,
                language=language if self.multilingual else "en",
            )
        return self._tokenizers[language]

    def run(self, audio: AudioSource | Samples) -> Iterator[Segment]:
        """Stream ``audio`` through every stage; yields segments batch by batch."""
        stream = AudioStream(audio)
        self.state.declared_duration = stream.declared_seconds
        vad, packer = StreamingVad(), WindowPacker()
        pending: list[Window] = []
        target = self.config.first_batch
        for block in stream:
            pending += packer.feed(vad.feed(block))
            while len(pending) >= target:
                yield from self._batch(pending[:target])
                pending = pending[target:]
                target = min(2 * target, self.config.batch_windows)
        pending += packer.feed(vad.flush()) + packer.flush()
        while pending:
            yield from self._batch(pending[:target])
            pending = pending[target:]
            target = min(2 * target, self.config.batch_windows)
        self.state.duration = stream.samples_read / SAMPLE_RATE

    # -- one decoder batch ------------------------------------------------------------
    def _batch(self, windows: list[Window]) -> Iterator[Segment]:
        encoded = encode_windows(self.whisper, self.fw.feature_extractor, windows)
        before = self._last_language
        languages = self._languages(encoded)
        if self._auto_language:
            windows, encoded, languages = self._split_languages(windows, encoded, languages, before)
        results = self._decode(windows, languages, encoded)
        if not self.config.timestamps:
            results = self._recover_short(results)
        todo = results
        while todo:
            again = []
            for r in todo:
                rest = (
                    r.window.remainder(r.resume)
                    if r.resume is not None and r.window.depth < MAX_DEPTH
                    else None
                )
                if rest is None:  # not decoded again: keep the unfinished tail
                    if r.tail is not None:
                        r.segments.append(r.tail)
                else:
                    again.append((rest, r))
            if not again:
                break
            by_language: dict[tuple[str, float], list[Window]] = defaultdict(list)
            for w, r in again:
                by_language[(r.language, r.probability)].append(w)
            joined = [(w, lp) for lp, ws in by_language.items() for w in pack(ws)]
            # remainders exist only after a decode with timestamps (the configuration's,
            # or a window decoded again piece by piece): decode them the same way
            todo = self._decode([w for w, _ in joined], [lp for _, lp in joined], timestamps=True)
            # a segment that runs across two joined windows: decode those apart
            whole: list[_Decoded] = []
            crossed: list[_Decoded] = []
            for r in todo:
                (crossed if _crosses(r) else whole).append(r)
            if crossed:
                todo = whole
                apart = [(w, (r.language, r.probability)) for r in crossed for w in r.window.parts]
                todo += self._decode(
                    [w for w, _ in apart], [lp for _, lp in apart], timestamps=True
                )
            results += todo
        if self.config.word_timestamps:
            self._words(results)
            if not self.config.timestamps:
                results = self._recover_unheard(results)
        release_freed_memory()  # the decoder's caches, before the next batch's encoder
        segments = [seg for r in results for seg in self._segments(r)]
        segments.sort(key=lambda s: (s.start, s.end))
        for seg in segments:
            yield _with_id(seg, self._next_id)
            self._next_id += 1

    def _recover_short(self, results: list[_Decoded]) -> list[_Decoded]:
        """Stage 7b. Input: a batch's decoded windows. Output: the same, except that a
        window whose text is too short for its speech (:data:`MIN_TOKEN_RATE`) is replaced
        by its speech regions decoded on their own, with timestamps (their unfinished
        remainders are decoded again by the batch loop) and, when no language is given,
        each with its own language (unless the window is a run cut at a change of language,
        whose language was decided there), if that gives more text. Costs nothing on windows
        that pass; one encoder pass per run of regions on a window that does not (one such
        window at a time: its parts' encoder outputs are all that is held)."""
        out: list[_Decoded] = []
        for r in results:
            out += self._by_regions(r) if self._too_short(r) else [r]
        return out

    def _by_regions(self, r: _Decoded, *, words: bool = False) -> list[_Decoded]:
        """The window ``r`` decoded again run of regions by run (:func:`_runs`), with
        timestamps and, when no language is given, each run's own language: those results
        if they hold more text, else ``[r]``. ``words``: align the new results (an
        unfinished run keeps its tail: no remainder is decoded again here)."""
        parts = _runs(r.window)
        encoded = encode_windows(self.whisper, self.fw.feature_extractor, parts)
        if self._auto_language and r.window.language is None:
            languages = self._region_languages(r, encoded)
        else:
            languages = [(r.language, r.probability)] * len(parts)
        again = self._decode(parts, languages, encoded, timestamps=True, counted=False)
        if self._text_tokens(again) <= self._text_tokens([r]):
            return [r]
        self._count(r, -1)
        for d in again:
            d.redone = True
            self._count(d, +1)
            if words and d.tail is not None:
                d.segments.append(d.tail)
                d.tail, d.resume = None, None
        if words:
            self._words(again)
        return again

    def _recover_unheard(self, results: list[_Decoded]) -> list[_Decoded]:
        """Stage 8b (with word timestamps). Input: a batch's decoded windows with their
        words. Output: the same, except that a window where :data:`MIN_UNHEARD_SECONDS` of
        speech in a row got no word is decoded again region by region (if that gives more
        text). Without timestamps the decoder can skip a sentence inside an otherwise full
        window: a Korean sentence of 5 s on an 8 kHz phone recording vanished, with no flag,
        and came back when its stretch was decoded alone (a Korean tester)."""
        out: list[_Decoded] = []
        for r in results:
            out += self._by_regions(r, words=True) if self._unheard(r) else [r]
        return out

    def _unheard(self, r: _Decoded) -> bool:
        """Does the window hold MIN_UNHEARD_SECONDS of speech regions in a row that no word
        falls in? (First-try text of a whole window only, as :meth:`_too_short`.)"""
        if not self._checkable(r) or r.redone or len(r.window.pieces) < 2:
            return False
        if r.resume is not None:  # unfinished: its rest was decoded as a window of its own
            return False
        spans = sorted((w["start"], w["end"]) for s in r.segments for w in s.words)
        if not spans:
            return False
        run = 0
        for piece in r.window.pieces:
            lo = piece.start / SAMPLE_RATE
            hi = lo + piece.length / SAMPLE_RATE
            if any(a < hi and b > lo for a, b in spans):
                run = 0
                continue
            run += piece.length
            if run >= MIN_UNHEARD_SECONDS * SAMPLE_RATE:
                return True
        return False

    def _count(self, r: _Decoded, sign: int) -> None:
        """Add (or take back) a decoded window's speech to the languages heard."""
        if is_silence(r.attempt, self.config.thresholds) or not r.attempt.text:
            return
        self.state.language_seconds[r.language] += sign * r.window.seconds
        probs = self.state.language_probs[r.language]
        if sign > 0:
            probs.append(r.probability)
        elif r.probability in probs:
            probs.remove(r.probability)
        if self.state.language_seconds[r.language] <= 1e-9 and not probs:
            del self.state.language_seconds[r.language]

    def _text_tokens(self, decoded: list[_Decoded]) -> int:
        """How many text tokens (no timestamps or specials) the windows' segments hold."""
        total = 0
        for r in decoded:
            eot = self.tokenizer(r.language).eot
            for s in [*r.segments, *([r.tail] if r.tail else [])]:
                total += sum(1 for t in s.tokens if t < eot)
        return total

    def _region_languages(self, r: _Decoded, encoded: list[Encoded]) -> list[tuple[str, float]]:
        """The language of each region of the window ``r``: the window's own unless the
        region is sure (p >= SURE) of another among the window's top two and the languages
        heard so far (a few seconds alone, or a dialect, are easily taken for a third)."""
        alternatives: list[tuple[str, float]] = []
        detect_languages(self.whisper, stack([r.encoded]), None, alternatives=alternatives)
        allowed = frozenset({r.language, alternatives[0][0], *self.state.language_seconds})
        out: list[tuple[str, float]] = []
        for lo in range(0, len(encoded), MAX_WINDOWS_PER_CALL):
            part = stack(encoded[lo : lo + MAX_WINDOWS_PER_CALL])
            found = detect_languages(self.whisper, part, r.language, allowed - {""})
            out += [(lang, p) if p >= SURE else (r.language, r.probability) for lang, p in found]
        return out

    def _checkable(self, r: _Decoded) -> bool:
        """A whole first-decoded window (not a remainder, not a joined one) with text that
        passed the quality checks at the first try and at least MIN_CHECKED_SECONDS of
        speech: what stages 7b and 8b look at."""
        if not r.segments or r.window.depth or r.window.sources:
            return False
        if r.attempt.strategy.temperature > 0 or failed(r.attempt, self.config.thresholds):
            return False
        return r.window.seconds >= MIN_CHECKED_SECONDS

    def _too_short(self, r: _Decoded) -> bool:
        """Does the window's text look cut short for its speech? (Only text that passed the
        quality checks at the first try: a window the fallback had to sample has another
        problem, which decoding its regions again does not solve.)"""
        if not self._checkable(r):
            return False
        floor = DEFAULT_MIN_TOKEN_RATE
        if self.config.task == "transcribe":  # a translation is English, whatever was spoken
            floor = MIN_TOKEN_RATE.get(r.language, DEFAULT_MIN_TOKEN_RATE)
        return self._text_tokens([r]) < floor * r.window.seconds

    def _decode(
        self,
        windows: list[Window],
        languages: list[tuple[str, float]],
        encoded: list[Encoded] | None = None,
        *,
        timestamps: bool | None = None,
        counted: bool = True,
    ) -> list[_Decoded]:
        """Decode windows (encoding them unless ``encoded`` is given), with or without
        timestamp tokens (default: the configuration's); ``counted``: add them to the
        state's windows and languages heard (a trial decode is counted only if kept)."""
        timestamps = self.config.timestamps if timestamps is None else timestamps
        setup = self.setup if timestamps == self.setup.timestamps else self._setup_ts
        if encoded is None:
            encoded = encode_windows(self.whisper, self.fw.feature_extractor, windows)
        release_freed_memory()
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (lang, _) in enumerate(languages):
            groups[lang].append(i)
        attempts: list[Attempt | None] = [None] * len(windows)
        for lang, idx in groups.items():
            tok = self.tokenizer(lang)
            rungs = ladder(
                self.config.beam_for(lang), self.config.temperatures, self.config.best_of
            )
            got = decode_with_fallback(
                setup,
                tok,
                [encoded[i] for i in idx],
                rungs,
                self.config.thresholds,
                min(MAX_WINDOWS_PER_CALL, self.config.batch_size),
                MAX_HYPOTHESES,
            )
            for i, kept in zip(idx, got, strict=True):
                attempts[i] = kept
        out = []
        for i, w in enumerate(windows):
            a = attempts[i]
            assert a is not None
            lang, p = languages[i]
            self.state.windows += counted
            if a.strategy.beam_size != self.config.beam_for(lang) or a.strategy.temperature > 0:
                self.state.fallbacks += counted
            segs: list[RawSegment] = []
            resume, tail = None, None
            if not is_silence(a, self.config.thresholds) and a.text:
                if timestamps:
                    segs, resume, tail = split_by_timestamps(
                        self.tokenizer(lang), a.tokens, w.seconds
                    )
                else:
                    segs = [RawSegment(0.0, w.seconds, list(a.tokens))]
            out.append(_Decoded(w, lang, p, encoded[i], a, segs, resume, tail))
            if counted:
                self._count(out[-1], +1)
        return out

    @property
    def _auto_language(self) -> bool:
        return self.config.language is None and self.multilingual

    def _split_languages(
        self,
        windows: list[Window],
        encoded: list[Encoded],
        languages: list[tuple[str, float]],
        before: str | None,
    ) -> tuple[list[Window], list[Encoded], list[tuple[str, float]]]:
        """Windows next to a change of language are cut where the language changes
        (:func:`split_by_language`); the others are kept with their encoder output."""
        alts = self._alternatives
        mixed = [alt if p_alt >= MIXED else None for alt, p_alt in alts]
        allowed = frozenset(
            [lang for lang, _ in languages]
            + ([before] if before else [])
            + [a for a in mixed if a is not None]
        )
        if len(allowed) < 2:
            return windows, encoded, languages

        def detect(w: Window) -> str | None:
            enc = stack(encode_windows(self.whisper, self.fw.feature_extractor, [w]))
            lang, p = detect_languages(self.whisper, enc, None, allowed)[0]
            # none of the file's languages is likely: a dialect or a noise, not a change
            return lang if p >= PLAUSIBLE else None

        out_w: list[Window] = []
        out_e: list[Encoded] = []
        out_l: list[tuple[str, float]] = []
        for i, (w, (lang, p)) in enumerate(zip(windows, languages, strict=True)):
            left = languages[i - 1][0] if i else before
            right = languages[i + 1][0] if i + 1 < len(languages) else None
            alt = mixed[i] if i < len(mixed) else None  # may be spoken in part of it
            if left in (None, lang) and right in (None, lang) and alt in (None, lang):
                out_w.append(w)
                out_e.append(encoded[i])
                out_l.append((lang, p))
                continue
            # each piece heard on its own (its encoder frames: no encoder pass), and the
            # window cut into runs of one language when they are in several; otherwise
            # the search for the changes at the window's ends and islands within it
            runs = runs_from_pieces(w.pieces, piece_languages(self.whisper, encoded[i], w, allowed))
            if runs is not None:
                parts = [(sub_window(w, ps), rl) for ps, rl in runs]
            else:
                parts = split_by_language(w, lang, left, right, detect, inside=alt)
            if len(parts) == 1:
                sl = parts[0][1]
                out_w.append(w if sl == lang else dataclasses.replace(w, language=sl))
                out_e.append(encoded[i])
                out_l.append((sl, p))
                continue
            parts = [(dataclasses.replace(sw, language=sl), sl) for sw, sl in parts]
            out_w += [sw for sw, _ in parts]
            out_e += encode_windows(
                self.whisper, self.fw.feature_extractor, [sw for sw, _ in parts]
            )
            out_l += [(sl, p) for _, sl in parts]
        return out_w, out_e, out_l

    def _languages(self, encoded: list[Encoded]) -> list[tuple[str, float]]:
        if self.config.language is not None or not self.multilingual:
            lang = self.config.language or "en"
            return [(lang, 1.0)] * len(encoded)
        self._alternatives = []
        found: list[tuple[str, float]] = []
        for lo in range(0, len(encoded), MAX_WINDOWS_PER_CALL):  # the same 36 MB per window
            part = stack(encoded[lo : lo + MAX_WINDOWS_PER_CALL])
            found += detect_languages(
                self.whisper, part, self._last_language, alternatives=self._alternatives
            )
            self._last_language = found[-1][0]
        return found

    def _words(self, results: list[_Decoded]) -> None:
        groups: dict[str, list[_Decoded]] = defaultdict(list)
        for r in results:
            if r.segments:
                groups[r.language].append(r)
        workers = workers_of(self.whisper)
        for lang, rs in groups.items():
            step = min(ALIGN_WINDOWS_PER_CALL, self.config.batch_size)
            align = partial(self._align, self.tokenizer(lang))
            map_calls(align, split(rs, step, workers), workers)

    def _align(self, tokenizer: Any, part: list[_Decoded]) -> None:
        align_words(
            self.whisper,
            tokenizer,
            stack([r.encoded for r in part]),
            [r.window for r in part],
            [r.segments for r in part],
            [num_frames(r.window) for r in part],
        )

    def _little_text(self, r: _Decoded) -> bool:
        """Far less text than its speech holds (:data:`LITTLE_TEXT_RATE`): speech the model
        does not understand (another language for an English-only model: 8 s of Korean
        were "Thank you very much."; singing, noise) gives little or invented text."""
        if r.window.seconds < MIN_CHECKED_SECONDS or self.config.task != "transcribe":
            return False
        return self._text_tokens([r]) < LITTLE_TEXT_RATE * r.window.seconds

    def _segments(self, r: _Decoded) -> Iterator[Segment]:
        tok = self.tokenizer(r.language)
        a = r.attempt
        seg_flags = flags(a, self.config.thresholds)
        if self._little_text(r):
            seg_flags.append("little_text")
        for s in r.segments:
            # U+FFFD: a character's bytes split by a sampled token or the length limit
            # ("The��이 출석은..." from a sampled translation)
            text = tok.decode([t for t in s.tokens if t < tok.eot]).replace("\ufffd", "")
            if not text.strip():
                continue
            words = None
            if self.config.word_timestamps:
                words = [
                    Word(float(w["start"]), float(w["end"]), w["word"].replace("\ufffd", ""),
                         float(w["probability"]))
                    for w in s.words
                    if w["word"].replace("\ufffd", "").strip()
                ]  # fmt: skip
            if words:
                start, end = words[0].start, words[-1].end
            else:
                p0 = r.window.piece_at(s.start)
                p1 = r.window.piece_at(s.end, end=True)
                start = r.window.to_recording(s.start, p0)
                end = r.window.to_recording(s.end, p1)
            yield Segment(
                id=0,
                start=round(start, 3),
                end=round(max(start, end), 3),
                text=text,
                avg_logprob=a.avg_logprob,
                no_speech_prob=a.no_speech_prob,
                compression_ratio=a.compression_ratio,
                temperature=a.strategy.temperature,
                words=words if self.config.word_timestamps else None,
                seek=round(r.window.start * 100),
                tokens=list(s.tokens),
                language=r.language,
                flags=list(seg_flags),
            )


class _Stoppable:
    """The CTranslate2 model with ``should_stop()`` asked before each of its calls
    (``encode``, ``generate``, ``detect_language``, ``align``): a stop takes one call."""

    _CALLS = frozenset({"encode", "generate", "detect_language", "align"})

    def __init__(self, model: Any, should_stop: Callable[[], bool]) -> None:
        self._model = model
        self._should_stop = should_stop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        if name not in self._CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._should_stop():
                raise TranscriptionCancelled("transcription stopped on request")
            return attr(*args, **kwargs)

        return call


def _runs(window: Window) -> list[Window]:
    """The window's speech regions as windows of their own, a region shorter than
    :data:`MIN_PART_SECONDS` joined to the one after it (a second alone is easily taken
    for another language, or filled with an invented "Thank you."); at most
    :data:`MAX_RECOVERY_PARTS` runs (one region: the window itself)."""
    pieces = window.pieces
    if len(pieces) == 1:
        return [window]
    groups: list[list[Piece]] = [[]]
    length = 0
    for p in pieces:
        groups[-1].append(p)
        length += p.length
        if length >= MIN_PART_SECONDS * SAMPLE_RATE:
            groups.append([])
            length = 0
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1:  # a short last run joins the one before
        # (not `groups[-2] += groups.pop()`: its -2 is resolved again after the pop, so
        # the joined run overwrote the run before it, which was lost, and came out twice)
        last = groups.pop()
        groups[-1] += last
    while len(groups) > MAX_RECOVERY_PARTS:  # join the shortest neighbours
        sizes = [sum(p.length for p in a + b) for a, b in itertools.pairwise(groups)]
        k = sizes.index(min(sizes))
        groups[k : k + 2] = [groups[k] + groups[k + 1]]
    if len(groups) == 1:
        return [window]
    return [sub_window(window, tuple(g)) for g in groups]


def _crosses(r: _Decoded) -> bool:
    """True when a segment of a joined window starts and ends in different parts."""
    w = r.window
    if not w.sources:
        return False
    for s in [*r.segments, *([r.tail] if r.tail else [])]:
        a = w.sources[w.piece_at(s.start)]
        b = w.sources[w.piece_at(s.end, end=True)]
        if a != b:
            return True
    return False


def release_freed_memory() -> None:
    """Give the memory glibc keeps after the encoder's calls back to the system before the
    decoder allocates its cross-attention caches, and the decoder's before the next
    encoder (``malloc_trim``), so the two stages' working memory is never resident at
    once. No-op off glibc.

    (Making glibc mmap every large buffer instead, with ``mallopt``, saves as much memory
    but doubles the encoder's time: every buffer is then page-faulted in again.)"""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


def _with_id(seg: Segment, seg_id: int) -> Segment:
    from dataclasses import replace

    return replace(seg, id=seg_id)


def config_from_options(opts: Any) -> PipelineConfig:
    """``DecodeOptions`` -> :class:`PipelineConfig` (thresholds may come through ``extra``)."""
    temps = opts.temperature if isinstance(opts.temperature, tuple | list) else (opts.temperature,)
    th = Thresholds(
        compression_ratio=float(opts.extra.get("compression_ratio_threshold", 2.4)),
        log_prob=float(opts.extra.get("log_prob_threshold", -1.0)),
        no_speech=float(opts.extra.get("no_speech_threshold", 0.6)),
    )
    return PipelineConfig(
        language=opts.language,
        task=opts.task,
        beam_size=opts.beam_size,
        best_of=opts.best_of,
        temperatures=tuple(float(t) for t in temps),
        word_timestamps=opts.word_timestamps,
        initial_prompt=opts.initial_prompt,
        hotwords=opts.hotwords,
        batch_size=opts.batch_size,
        timestamps=not bool(opts.extra.get("without_timestamps", True)),
        thresholds=th,
    )
