"""Output formats, one renderer per format name (as openai-whisper's ``get_writer``).

Subtitle cues come from :mod:`malsori.subtitles` (line, timing and reading-speed rules per
language) and go through pysubs2 so timestamps, escaping and cue numbering follow the
formats' rules; JSON carries everything in the :class:`Transcript`. Files are written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import pysubs2

from ._atomic import atomic_write_many
from .errors import OptionsError, OutputError
from .options import DecodeOptions
from .subtitles.cues import build_cues, cue_text, karaoke
from .subtitles.rules import MAX_CUE_DURATION, SubtitleOptions
from .transcript import Transcript


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


#: The longest cue (the Netflix limit); kept under its old name for callers.
MAX_CUE_SECONDS = MAX_CUE_DURATION

_SUBTITLE_OPTIONS: ContextVar[SubtitleOptions | None] = ContextVar(
    "malsori_subtitle_options", default=None
)


def subtitle_options() -> SubtitleOptions:
    """The subtitle options renderers use when called without any (the defaults of each
    transcript's language, unless :func:`set_subtitle_options` changed them)."""
    return _SUBTITLE_OPTIONS.get() or SubtitleOptions()


def set_subtitle_options(options: SubtitleOptions | None) -> None:
    """Make ``options`` the default of srt/vtt rendering in this context (the CLI calls it
    with its ``--max-line-width``... flags, so :func:`write_transcript` picks them up)."""
    _SUBTITLE_OPTIONS.set(options)


@contextmanager
def using_subtitle_options(options: SubtitleOptions | None) -> Iterator[SubtitleOptions]:
    """``with using_subtitle_options(opts): write_transcript(...)`` -- the options for the
    block only."""
    token = _SUBTITLE_OPTIONS.set(options)
    try:
        yield subtitle_options()
    finally:
        _SUBTITLE_OPTIONS.reset(token)


def cues(
    transcript: Transcript, options: SubtitleOptions | None = None
) -> list[tuple[float, float, str]]:
    """Subtitle cues ``(start, end, text)`` in seconds, lines separated by ``\\n``: built by
    :func:`malsori.subtitles.build_cues` (line width, line count, duration, pauses, reading
    speed, orphans, gaps; defaults by the transcript's language)."""
    built = build_cues(transcript, options or subtitle_options())
    return [(c.start, c.end, c.text) for c in built]


#: WebVTT cue text is markup: ``<``, ``>`` and ``&`` of the words are written as character
#: references (a player showed "if x <y and y> z" as "if x  z"). They pass pysubs2 as
#: private-use characters, put back as references in the finished text.
_VTT_ESCAPES = {"&": ("\ue0f0", "&amp;"), "<": ("\ue0f1", "&lt;"), ">": ("\ue0f2", "&gt;")}


def _vtt_hide(text: str) -> str:
    for ch, (hidden, _) in _VTT_ESCAPES.items():
        text = text.replace(ch, hidden)
    return text


def _vtt_references(text: str) -> str:
    for hidden, reference in _VTT_ESCAPES.values():
        text = text.replace(hidden, reference)
    return text


def _subtitles(
    transcript: Transcript, options: SubtitleOptions | None = None, *, voice_tags: bool = False
) -> pysubs2.SSAFile:
    """Cues as pysubs2 events; in a diarized transcript each cue starts with its speaker:
    ``<v SPEAKER_1>`` (WebVTT voice tag, not shown, so not measured) with ``voice_tags``,
    else ``[SPEAKER_1] `` (measured with the first line). Cues of two speakers never
    overlap and keep the minimum gap (the cue builder times them together)."""
    opts = options or subtitle_options()
    subs = pysubs2.SSAFile()
    label = None if voice_tags else speaker_label
    for cue in build_cues(transcript, opts, label):
        parts = karaoke(cue) if opts.highlight_words else [(cue.start, cue.end, cue_text(cue))]
        for start_s, end_s, text in parts:
            if voice_tags:  # WebVTT
                text = _vtt_hide(text)
            if cue.speaker and voice_tags:
                text = f"<v {cue.speaker}>" + text
            start, end = _ms(start_s), _ms(end_s)
            subs.append(pysubs2.SSAEvent(start=start, end=max(end, start + 1), text=text))
    return subs


def speaker_label(speaker: str) -> str:
    """The visible speaker label of an SRT cue and a txt line: ``[SPEAKER_1]``."""
    return f"[{speaker}]"


def render_txt(transcript: Transcript) -> str:
    """One line per segment; in a diarized transcript prefixed ``[SPEAKER_1] ``."""
    return "".join(
        f"{f'[{seg.speaker}] ' if seg.speaker else ''}{seg.text.strip()}\n"
        for seg in transcript.segments
        if seg.text.strip()
    )


def render_srt(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    """SubRip cues (see :func:`cues`); ``options`` default to :func:`subtitle_options`."""
    return str(_subtitles(transcript, options).to_string("srt"))


def render_vtt(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    """WebVTT cues (see :func:`cues`); ``options`` default to :func:`subtitle_options`."""
    return _vtt_references(str(_subtitles(transcript, options, voice_tags=True).to_string("vtt")))


def render_tsv(transcript: Transcript) -> str:
    """openai-whisper's TSV (start and end in integer milliseconds, then the text), with a
    ``language`` column last: the language each segment was decoded in (a mixed recording
    changes language between segments; empty when unknown), and a ``speaker`` column after
    it in a diarized transcript (empty cells where nobody speaks)."""
    diarized = bool(transcript.speakers) or transcript.diarized
    lines = ["start\tend\ttext\tlanguage" + ("\tspeaker" if diarized else "")]
    for seg in transcript.segments:
        text = seg.text.strip().replace("\t", " ")
        line = f"{_ms(seg.start)}\t{_ms(seg.end)}\t{text}\t{seg.language or ''}"
        lines.append(line + (f"\t{seg.speaker or ''}" if diarized else ""))
    return "\n".join(lines) + "\n"


def render_json(transcript: Transcript) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


#: Formats whose readers expect short cues; word timings are asked for to build them.
SUBTITLE_FORMATS = frozenset({"srt", "vtt"})

#: Output writers keyed by format name (the file extension).
WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "json": render_json,
}
FORMATS: tuple[str, ...] = tuple(WRITERS)


def options_for_formats(options: DecodeOptions, formats: Iterable[str]) -> DecodeOptions:
    """For subtitle formats ask for word timings: :func:`cues` cuts at words, splits at
    pauses and times each cue to its speech (segments alone are up to 30 s long)."""
    if SUBTITLE_FORMATS & set(formats) and not options.word_timestamps:
        return options.replace(word_timestamps=True)
    return options


def expand_formats(formats: str | Iterable[str]) -> list[str]:
    """``"all"`` -> every format; ``"srt,vtt"`` or an iterable -> that list (validated)."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for name in (n.strip().lower() for n in names):
        if not name:  # "txt,srt," or "-f ''"
            continue
        if name == "all":
            out.extend(f for f in FORMATS if f not in out)
        elif name in WRITERS:
            if name not in out:
                out.append(name)
        else:
            raise OptionsError(
                f"unknown output format {name!r}; expected {', '.join(FORMATS)} or all"
            )
    if not out:
        raise OptionsError(f"no output format given; expected {', '.join(FORMATS)} or all")
    return out


def output_paths(
    output_dir: str | os.PathLike[str], stem: str, formats: str | Iterable[str] = "all"
) -> list[Path]:
    """The files :func:`write_transcript` would write: ``<output_dir>/<stem>.<format>``.
    ``stem`` is a file name: one with a folder in it (``../x``) or none at all (``.txt``)
    is an :class:`OptionsError`."""
    # ("..wav" gives the stem ".", and "..txt" is a file name like any other)
    if not isinstance(stem, str) or not stem or "/" in stem or os.sep in stem or "\0" in stem:
        raise OptionsError(f"the output name must be a file name without a folder, got {stem!r}")
    return [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]


def write_transcript(
    transcript: Transcript,
    output_dir: str | os.PathLike[str],
    stem: str,
    formats: str | Iterable[str] = "all",
    *,
    overwrite: bool = True,
) -> list[Path]:
    """Write ``<stem>.<ext>`` for each format into ``output_dir`` (created when missing);
    returns the paths.

    All formats are rendered first, then written atomically as a set: on a full disk none of
    them appears (an existing older set stays as it was) and :class:`malsori.OutputError`
    names the file that failed. Files of those names are replaced, as ``open(..., "w")``
    would; ``overwrite=False`` refuses (``OutputError``) when any of them exists. (The CLI
    keeps track of what it wrote and never replaces a file it did not write.)"""
    files = render_transcript(transcript, output_dir, stem, formats)
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)  # as the CLI's -o does
    except OSError as exc:
        raise OutputError(f"cannot create {output_dir}: {exc.strerror or exc}") from exc
    atomic_write_many(files, replace=overwrite)
    return [p for p, _ in files]


def render_transcript(
    transcript: Transcript,
    output_dir: str | os.PathLike[str],
    stem: str,
    formats: str | Iterable[str] = "all",
) -> list[tuple[Path, str]]:
    """What :func:`write_transcript` writes, without writing it: ``(path, text)`` per format
    (text written as UTF-8, newlines as they are)."""
    fmts = expand_formats(formats)
    paths = output_paths(output_dir, stem, fmts)
    return [(p, WRITERS[f](transcript)) for p, f in zip(paths, fmts, strict=True)]
