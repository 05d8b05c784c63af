"""Check an SRT or WebVTT file against the subtitle rules and report every cue that breaks one.

The checks need only the file: line width and count, duration, gaps and overlaps, reading
speed, orphans, line breaks. (Whether a cue spans a pause needs the audio's word timings,
which a subtitle file does not carry; malsori's tests check that rule on the transcript.)
Karaoke files (``--highlight-words``) repeat one cue as back-to-back events with one word
underlined; such a run counts as one cue. In a diarized file (WebVTT voice tags, or SRT cues
that start with a ``[SPEAKER]`` label) an orphan is not expected to join another speaker's
cue; the voice tag is not shown, so it is not measured.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pysubs2

from ..errors import MalsoriError
from .breaks import P_FORBIDDEN, Unit, break_penalty, fits, join_units, wrap
from .cues import separation
from .rules import Limits, SubtitleOptions

#: Every rule the linter checks, with what it means.
RULES: dict[str, str] = {
    "empty": "a cue without text",
    "order": "a cue starts before the one before it",
    "timing": "a cue ends before it starts",
    "overlap": "a cue starts before the one before it has ended",
    "gap": "less than the minimum gap (2 frames) between two cues",
    "min-duration": "a cue is shown for less than the minimum duration",
    "max-duration": "a cue is shown for longer than the maximum duration",
    "line-count": "more lines than allowed",
    "line-width": "a line wider than allowed",
    "one-line": "two lines for text that fits on one",
    "line-break": "a line break between words that belong together",
    "whitespace": "a line that starts or ends with a space",
    "reading-speed": "more characters per second than allowed",
    "orphan": "one or two words on their own, next to a cue they would fit into",
}


@dataclass(frozen=True)
class Violation:
    """One rule broken by one cue (numbered from 1, in file order)."""

    cue: int
    rule: str
    message: str
    #: the line of the cue's timing in the file (0: unknown)
    line: int = 0
    #: the cue's own number (SRT) or identifier (WebVTT) in the file, if it has one
    label: str = ""

    def __str__(self) -> str:
        return f"cue {self.label or self.cue}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class Event:
    """A cue as read from a file: number, times in milliseconds, lines of plain text."""

    number: int
    start: int
    end: int
    lines: tuple[str, ...]
    #: Who speaks: a WebVTT voice tag (``<v SPEAKER_1>``), or the last ``[SPEAKER_1]``
    #: label that started an SRT cue; None when the file names no speakers.
    speaker: str | None = None
    #: the line of its timing in the file, and its own number (SRT) or identifier (WebVTT)
    line: int = 0
    label: str = ""
    #: the cue's text as written starts or ends with a space (the parser strips both ends)
    padded: bool = False

    @property
    def duration(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        """How messages name the cue: as the file numbers it, else by its position."""
        return self.label or str(self.number)


_TAG = re.compile(r"<[^>]*>")
#: A cue's timing line as each format writes it: SRT ``HH:MM:SS,mmm --> HH:MM:SS,mmm``
#: (a dot is read too), WebVTT ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm [settings]``; minutes
#: and seconds 00-59.
_SRT_TIME = r"\d{1,3}:[0-5]\d:[0-5]\d[,.]\d{1,3}"
_VTT_TIME = r"(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}"
_TIMING_LINE = {
    "srt": re.compile(rf"^[ \t]*{_SRT_TIME}[ \t]*-->[ \t]*{_SRT_TIME}(?:[ \t].*)?$"),
    "vtt": re.compile(rf"^[ \t]*{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t].*)?$"),
}


#: A line that starts like a timing line (its times may be malformed).
_LOOKS_TIMED = re.compile(r"^[ \t]*[\w:.,]*\d[\w:.,]*[ \t]*-->")


class ParseError(MalsoriError):
    """A file that cannot be checked, with the line (1-based) where it goes wrong."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def _check_structure(text: str, fmt: str) -> None:
    """Every block of the file is a cue with a well-formed timing line (first or second
    line of its block), or, in WebVTT, the header or a NOTE/STYLE/REGION block. pysubs2
    reads past what it cannot parse: a cue whose time is ``00:00:AA,000``, or a block with
    no timing line, became text of the cue before it (checked as one cue of 5 lines)."""
    lines = text.split("\n")
    block: list[tuple[int, str]] = []
    for k, line in enumerate([*lines, ""], start=1):
        if line.strip():
            block.append((k, line))
            continue
        if block:
            _check_block(block, fmt)
        block = []


def _check_block(block: list[tuple[int, str]], fmt: str) -> None:
    first = block[0][1].strip()
    if fmt == "vtt" and first.startswith(("WEBVTT", "NOTE", "STYLE", "REGION")):
        return
    arrows = [(k, line) for k, line in block if "-->" in line]
    if not arrows:
        raise ParseError(
            f"a block with no timing line (no '-->'; an empty line inside a cue's text?): "
            f"{first[:60]!r}",
            block[0][0],
        )
    k, line = arrows[0]
    position = next(i for i, (n, _) in enumerate(block) if n == k)
    if position > 1:  # the timing line comes first, or after a number / an identifier
        raise ParseError(
            f"a block whose timing line is not its first or second line: {first[:60]!r}",
            block[0][0],
        )
    if not _TIMING_LINE[fmt].match(line):
        raise ParseError(f"malformed timing line: {line.strip()[:80]!r}", k)
    for k, line in arrows[1:]:  # another cue's timing line, with no empty line before it
        if _LOOKS_TIMED.match(line):
            what = "timing line" if _TIMING_LINE[fmt].match(line) else "malformed timing line"
            raise ParseError(
                f"{what} inside the cue before it (an empty line missing?): {line.strip()[:80]!r}",
                k,
            )


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_LABEL = re.compile(r"\[([^\[\]]+)\]\s")


def _anchors(text: str) -> list[tuple[int, str]]:
    """Each cue's timing line (1-based) and the line above it in its block (an SRT cue's
    number, a WebVTT cue's identifier; "" if none), in order."""
    out: list[tuple[int, str]] = []
    block: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for k, line in enumerate([*lines, ""], start=1):
        if line.strip():
            block.append(line)
            if "-->" in line and not any("-->" in b for b in block[:-1]):
                label = block[-2].strip() if len(block) > 1 else ""
                out.append((k, "" if label.startswith("WEBVTT") else label))
        else:
            block = []
    return out


def _payloads(text: str) -> list[str]:
    """Each cue's text as written in the file (markup included), in order: pysubs2 drops
    WebVTT class spans (``<c.hl>``), which is how a karaoke run marks its word."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        timing = next((k for k, line in enumerate(lines) if "-->" in line), None)
        if timing is not None:
            out.append("\n".join(lines[timing + 1 :]))
    return out


def _voices(text: str) -> list[str | None]:
    """The voice (``<v NAME>``) of each cue of a cleaned WebVTT document, in order."""
    out: list[str | None] = []
    for block in text.split("\n\n")[1:]:
        found = _VOICE.search(block)
        out.append(found.group(1).strip() if found else None)
    return out


def _clean_vtt(text: str) -> tuple[str, int]:
    """WebVTT without NOTE/STYLE/REGION blocks and cue identifiers, which pysubs2 would
    otherwise read as cue text; and how many blocks are neither those nor a cue (a timing
    line mistyped as ``->``: pysubs2 would skip it without a word)."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    kept = []
    strays = 0
    for block in blocks:
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        head = lines[0].strip()
        if head.startswith(("NOTE", "STYLE", "REGION")):
            continue
        if head.startswith("WEBVTT"):
            kept.append("WEBVTT")
            continue
        timing = next((k for k, line in enumerate(lines) if "-->" in line), None)
        if timing is not None:
            kept.append("\n".join(lines[timing:]))
        else:
            strays += 1
    return "\n\n".join(kept) + "\n", strays


def _plain_lines(event: pysubs2.SSAEvent) -> tuple[str, ...]:
    # NFC: text saved on a Mac has Hangul decomposed into jamo, measured 1.7x as wide
    text = unicodedata.normalize("NFC", html.unescape(_TAG.sub("", event.plaintext)))
    return tuple(text.split("\n"))


def parse(text: str, fmt: str) -> list[Event]:
    """Events of an SRT (``fmt="srt"``) or WebVTT (``"vtt"``) document, karaoke runs
    merged into one."""
    text = text.removeprefix("\ufeff")  # a byte-order mark kept by the caller
    # Windows line ends: pysubs2 kept the "\r" in the text (a wider line, a "space" at its
    # end, an extra line in the cue)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if fmt == "vtt" and text.strip() and not text.startswith("WEBVTT"):
        raise MalsoriError("not WebVTT: a WebVTT file starts with the line WEBVTT")
    if "-->" in text:  # (no timing line at all: "no cues found", below)
        _check_structure(text, fmt)
    timings = sum(1 for line in text.split("\n") if _TIMING_LINE[fmt].match(line))
    anchors = _anchors(text)
    if fmt == "vtt":
        text, strays = _clean_vtt(text)
        if strays:
            raise MalsoriError(
                f"{strays} block(s) are neither a cue nor a NOTE/STYLE/REGION (a timing line "
                "without '-->'?)"
            )
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    except Exception as exc:  # pysubs2 raises several types for malformed input
        raise MalsoriError(f"cannot read the {fmt} file: {exc}") from exc
    # pysubs2 skips what it cannot parse: a cue with a malformed time, a file that is not
    # subtitles at all; a check that reported "OK" for those would be wrong.
    if timings > len(subs.events):
        raise MalsoriError(
            f"{timings - len(subs.events)} of {timings} cue(s) could not be read (a malformed "
            "timing line?)"
        )
    body = text.strip().removeprefix("WEBVTT").strip() if fmt == "vtt" else text.strip()
    if not subs.events and body:
        raise MalsoriError(f"no cues found: this is not {fmt} text")
    voices = _voices(text) if fmt == "vtt" else []
    if len(voices) != len(subs.events):
        voices = [None] * len(subs.events)
    payloads = _payloads(text)
    if len(payloads) != len(subs.events):
        payloads = [ev.text for ev in subs.events]
    if len(anchors) != len(subs.events):
        anchors = [(0, "")] * len(subs.events)
    events: list[Event] = []
    speaker: str | None = None
    previous_raw: str | None = None
    for number, (ev, voice, raw, (line, ident)) in enumerate(
        zip(subs.events, voices, payloads, anchors, strict=True), start=1
    ):
        lines = _plain_lines(ev)
        label = _LABEL.match(lines[0]) if fmt == "srt" else None
        speaker = label.group(1) if label else voice if fmt == "vtt" else speaker
        last = events[-1] if events else None
        # A karaoke run: the same text, back to back, with the markup in another place (the
        # next word underlined). The same cue repeated word for word is two cues ("No." and
        # "No." said twice), each checked on its own.
        if last and last.end == ev.start and last.lines == lines and raw != previous_raw:
            events[-1] = dataclasses.replace(last, end=ev.end)
        else:
            bare = _TAG.sub("", raw).split("\n")
            padded = bool(bare) and (bare[0][:1].isspace() or bare[-1][-1:].isspace())
            events.append(Event(number, ev.start, ev.end, lines, speaker, line, ident, padded))
        previous_raw = raw
    return events


def read(path: str | Path) -> list[Event]:
    """Events of an ``.srt`` or ``.vtt`` file (by its extension; SRT otherwise)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MalsoriError(f"cannot read {p}: {exc.strerror or exc}") from exc
    # UTF-8 (with or without a byte-order mark), or UTF-16 with one (Windows tools)
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        hint = ""
        try:  # older Korean subtitles are often CP949 (EUC-KR)
            if any("\uac00" <= ch <= "\ud7a3" for ch in data.decode("cp949")):
                hint = f"; it reads as Korean in CP949: iconv -f cp949 -t utf-8 {p} > utf8.srt"
        except UnicodeDecodeError:
            pass
        raise MalsoriError(
            f"{p} is not UTF-8 text (nor UTF-16 with a byte-order mark){hint}"
        ) from exc
    try:
        return parse(text, "vtt" if p.suffix.lower() == ".vtt" else "srt")
    except ParseError as exc:
        where = f"{p}:{exc.line}" if exc.line else str(p)
        raise MalsoriError(f"{where}: {exc}") from exc
    except MalsoriError as exc:
        raise MalsoriError(f"{p}: {exc}") from exc


def _units(lines: Sequence[str]) -> list[Unit]:
    return [Unit(word, 0.0, 0.0) for line in lines for word in line.split()]


def _check_timing(prev: Event | None, ev: Event, limits: Limits) -> list[Violation]:
    out: list[Violation] = []
    n = ev.number
    if prev is not None:
        if ev.start < prev.start:
            out.append(Violation(n, "order", f"starts before cue {prev.name}"))
        elif ev.start < prev.end:
            out.append(
                Violation(
                    n, "overlap", f"starts {prev.end - ev.start} ms before cue {prev.name} ends"
                )
            )
        elif ev.start - prev.end < math.ceil(limits.min_gap * 1000 - 1e-6):
            out.append(
                Violation(
                    n,
                    "gap",
                    f"{ev.start - prev.end} ms after cue "
                    f"{prev.name} (minimum {limits.min_gap * 1000:.0f} ms)",
                )
            )
    if ev.duration < 0:
        out.append(
            Violation(n, "timing", f"ends {-ev.duration} ms before it starts (end before start)")
        )
    elif ev.duration < math.floor(limits.min_cue_duration * 1000 + 1e-6):
        out.append(
            Violation(
                n,
                "min-duration",
                f"{ev.duration / 1000:.3f} s (minimum {limits.min_cue_duration:.3f} s)",
            )
        )
    if ev.duration > limits.max_cue_duration * 1000 + 0.5:
        out.append(
            Violation(
                n,
                "max-duration",
                f"{ev.duration / 1000:.3f} s (maximum {limits.max_cue_duration:g} s)",
            )
        )
    return out


def _check_lines(ev: Event, limits: Limits) -> list[Violation]:
    out: list[Violation] = []
    n, lines = ev.number, ev.lines
    if len(lines) > limits.max_line_count:
        out.append(
            Violation(n, "line-count", f"{len(lines)} lines (maximum {limits.max_line_count})")
        )
    for k, line in enumerate(lines, start=1):
        width = limits.width(line)
        if width > limits.max_line_width + 1e-9:
            out.append(
                Violation(
                    n,
                    "line-width",
                    f"line {k} is {width:g} wide (maximum {limits.max_line_width:g}): {line!r}",
                )
            )
        if line != line.strip():
            out.append(Violation(n, "whitespace", f"line {k} starts or ends with a space"))
    if ev.padded and not any(v.rule == "whitespace" for v in out):
        # the first line's start and the last line's end, which the parser strips
        out.append(Violation(n, "whitespace", "the cue starts or ends with a space"))
    if len(lines) > 1 and limits.rules.spaced:
        words = _units(lines)
        if limits.width(join_units(words)) <= limits.max_line_width + 1e-9:
            out.append(Violation(n, "one-line", "the text fits on one line"))
        for k in range(len(lines) - 1):
            before, after = lines[k].split(), lines[k + 1].split()
            if (
                before
                and after
                and (break_penalty(before[-1], after[0], limits.rules.style) >= P_FORBIDDEN)
            ):
                out.append(
                    Violation(
                        n,
                        "line-break",
                        f"between {before[-1]!r} and {after[0]!r} (lines {k + 1}-{k + 2})",
                    )
                )
    return out


def _cps(lines: Sequence[str], duration_ms: int, limits: Limits) -> float:
    return limits.cue_width(list(lines)) / max(duration_ms / 1000, 1e-3)


def _merge_fits(a: Event, b: Event, limits: Limits) -> bool:
    words = _units(a.lines) + _units(b.lines)
    duration = b.end - a.start
    if not fits(words, limits) or duration > limits.max_cue_duration * 1000 + 0.5:
        return False
    lines = [join_units([words[k] for k in part]) for part in wrap(words, limits)]
    return _cps(lines, duration, limits) <= limits.max_cps + 1e-6


def _check_orphan(events: Sequence[Event], i: int, limits: Limits) -> list[Violation]:
    ev = events[i]
    if not limits.rules.spaced or len(_units(ev.lines)) > 2:
        return []
    near = separation(limits) * 1000
    for j in (i - 1, i + 1):
        if not 0 <= j < len(events) or events[j].speaker != ev.speaker:
            continue  # another speaker's cue cannot take the words
        a, b = (events[j], ev) if j < i else (ev, events[j])
        if b.start - a.end < near and _merge_fits(a, b, limits):
            return [
                Violation(
                    ev.number,
                    "orphan",
                    f"{' '.join(ev.lines)!r} would fit into cue {events[j].name}",
                )
            ]
    return []


def lint_events(
    events: Sequence[Event], limits: Limits | Callable[[Event], Limits]
) -> list[Violation]:
    """Every rule each event breaks, in cue order. ``limits``: one set for every event, or
    a function giving each event its own (a file that changes language)."""
    out: list[Violation] = []
    fixed = limits if isinstance(limits, Limits) else None
    # The cue before on the timeline: after a cue that is out of order, the next one's gap
    # and overlap are measured against the last cue in order, not the stray one (a 50 ms
    # gap went unreported: a subtitler).
    latest: Event | None = None
    for i, ev in enumerate(events):
        lim = fixed if fixed is not None else limits(ev)  # type: ignore[operator]
        if not "".join(ev.lines).strip():
            out.append(Violation(ev.number, "empty", "no text"))
            continue
        out += _check_timing(latest, ev, lim)
        if latest is None or (ev.start, ev.end) >= (latest.start, latest.end):
            latest = ev
        out += _check_lines(ev, lim)
        cps = _cps(ev.lines, ev.duration, lim)
        # a reversed cue: "timing" says it; a 0-length one: "min-duration" (its speed was
        # reported as 23000 characters per second)
        if ev.duration > 0 and cps > lim.max_cps + 1e-6:
            out.append(
                Violation(
                    ev.number,
                    "reading-speed",
                    f"{cps:.1f} characters per second (maximum {lim.max_cps:g})",
                )
            )
        out += _check_orphan(events, i, lim)
    where = {ev.number: ev for ev in events}
    return [dataclasses.replace(v, line=where[v.cue].line, label=where[v.cue].label) for v in out]


def guess_language(lines: Sequence[str]) -> str:
    """A language code for subtitle text by its script: Hangul -> ``ko``, kana -> ``ja``,
    Han -> ``zh``, anything else -> ``en``."""
    text = "".join(lines)
    if re.search(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", text):
        return "ko"
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    if re.search(r"[\u4e00-\u9fff]", text):
        return "zh"
    return "en"


def lint_file(
    path: str | Path, options: SubtitleOptions | None = None, language: str | None = None
) -> list[Violation]:
    """Lint an ``.srt``/``.vtt`` file with the limits of ``language`` (``None``: generic),
    overridden by ``options``."""
    limits = (options or SubtitleOptions()).limits(language)
    return lint_events(read(path), limits)


def lint_text(
    text: str, fmt: str, options: SubtitleOptions | None = None, language: str | None = None
) -> list[Violation]:
    """Lint SRT/WebVTT text (``fmt`` is ``srt`` or ``vtt``)."""
    limits = (options or SubtitleOptions()).limits(language)
    return lint_events(parse(text, fmt), limits)
