"""Output formats, one renderer per format name (as openai-whisper's ``get_writer``).

Subtitles go through pysubs2 so timestamps, escaping and cue numbering follow the formats'
rules; JSON carries everything in the :class:`Transcript`. Files are written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pysubs2

from ._atomic import atomic_write_many
from .errors import OptionsError
from .options import DecodeOptions
from .transcript import Transcript, Word


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


#: Subtitle cues longer than this are split at word boundaries (when word timings exist).
MAX_CUE_SECONDS = 7.0
MAX_CUE_CHARS = 84  # two lines of 42 characters, the usual broadcast limit
_SENTENCE_END = (".", "?", "!", "。", "？", "！")


def cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    """Subtitle cues: segments, with long ones split at word boundaries (by duration and
    length, preferring a break after a sentence end). Without word timings a segment stays
    one cue."""
    out: list[tuple[float, float, str]] = []
    for seg in transcript.segments:
        text = seg.text.strip()
        if not text:
            continue
        long = seg.end - seg.start > MAX_CUE_SECONDS or len(text) > MAX_CUE_CHARS
        if not long or not seg.words:
            out.append((seg.start, seg.end, text))
            continue
        group: list[Word] = []
        for word in seg.words:
            if group:
                chars = len("".join(w.word for w in group).strip()) + len(word.word)
                too_long = word.end - group[0].start > MAX_CUE_SECONDS or chars > MAX_CUE_CHARS
                sentence_break = (
                    group[-1].word.strip().endswith(_SENTENCE_END) and chars > MAX_CUE_CHARS * 0.4
                )
                if too_long or sentence_break:
                    out.append(
                        (group[0].start, group[-1].end, "".join(w.word for w in group).strip())
                    )
                    group = []
            group.append(word)
        if group:
            out.append((group[0].start, group[-1].end, "".join(w.word for w in group).strip()))
    return out


def _subtitles(transcript: Transcript) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    for start_s, end_s, text in cues(transcript):
        start, end = _ms(start_s), _ms(end_s)
        subs.append(pysubs2.SSAEvent(start=start, end=max(end, start + 1), text=text))
    return subs


def render_txt(transcript: Transcript) -> str:
    return "".join(f"{seg.text.strip()}\n" for seg in transcript.segments if seg.text.strip())


def render_srt(transcript: Transcript) -> str:
    return str(_subtitles(transcript).to_string("srt"))


def render_vtt(transcript: Transcript) -> str:
    return str(_subtitles(transcript).to_string("vtt"))


def render_tsv(transcript: Transcript) -> str:
    """openai-whisper's TSV: start and end in integer milliseconds, then the text."""
    lines = ["start\tend\ttext"]
    for seg in transcript.segments:
        text = seg.text.strip().replace("\t", " ")
        lines.append(f"{_ms(seg.start)}\t{_ms(seg.end)}\t{text}")
    return "\n".join(lines) + "\n"


def render_json(transcript: Transcript) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


#: Formats whose readers expect short cues; the CLI asks for word timings to split them.
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
    """Batched windows are up to 30 s long: for subtitle formats ask for word timings, so
    that :func:`cues` can cut them into readable cues."""
    if options.batch_size > 1 and SUBTITLE_FORMATS & set(formats) and not options.word_timestamps:
        return options.replace(word_timestamps=True)
    return options


def expand_formats(formats: str | Iterable[str]) -> list[str]:
    """``"all"`` -> every format; ``"srt,vtt"`` or an iterable -> that list (validated)."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for name in (n.strip().lower() for n in names):
        if name == "all":
            out.extend(f for f in FORMATS if f not in out)
        elif name in WRITERS:
            if name not in out:
                out.append(name)
        else:
            raise OptionsError(
                f"unknown output format {name!r}; expected {', '.join(FORMATS)} or all"
            )
    return out


def output_paths(
    output_dir: str | os.PathLike[str], stem: str, formats: str | Iterable[str] = "all"
) -> list[Path]:
    """The files :func:`write_transcript` would write: ``<output_dir>/<stem>.<format>``."""
    return [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]


def write_transcript(
    transcript: Transcript,
    output_dir: str | os.PathLike[str],
    stem: str,
    formats: str | Iterable[str] = "all",
) -> list[Path]:
    """Write ``<stem>.<ext>`` for each format into ``output_dir``; returns the paths.

    All formats are rendered first, then written atomically as a set: on a full disk none of
    them appears (an existing older set stays as it was) and :class:`malsori.OutputError`
    names the file that failed."""
    fmts = expand_formats(formats)
    paths = output_paths(output_dir, stem, fmts)
    atomic_write_many([(p, WRITERS[f](transcript)) for p, f in zip(paths, fmts, strict=True)])
    return paths
