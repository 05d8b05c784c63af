"""Turn a transcript's word-timed segments into subtitle cues that follow the rules.

1. Words become *units* that are never split: a Korean eojeol stays whole, punctuation
   stays with its word. A segment without word timings is split into words and timed in
   proportion to their width.
2. A silence longer than ``split_on_pause`` always separates cues (*blocks*).
3. Inside a block, a dynamic programme picks the cue boundaries: every cue fits the line
   width, line count and maximum duration; boundaries go to the best break points (sentence
   end, clause end, before a conjunction, at a pause); short fragments are penalised.
4. Timing: cues are chained (gaps under :data:`~.rules.CHAIN_GAP` closed to the minimum
   gap), extended into the following silence for the minimum duration and the reading
   speed (or started up to :data:`~.rules.MAX_LEAD` early, or given time the cue before
   does not need), and never overlap; in continuous speech a cue may push the next one by
   at most :data:`~.rules.MAX_LAG`. Words Whisper stacked at one instant get their reading
   time first.
5. Orphans (one or two words, or under the minimum duration) left over are merged into a
   neighbour of the same block when the merged cue still keeps every limit.

In a diarized transcript a change of speaker also ends a block (a cue never mixes two
speakers), but is timed like chained speech: the cues of two speakers never overlap and keep
the minimum gap. Each cue may carry a visible *label* (``[SPEAKER_1]`` in SRT) at the start
of its first line; it is measured with the words (line width, line count, reading speed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..transcript import Segment, Transcript
from .breaks import (
    P_ADNOMINAL,
    P_DEFAULT,
    Unit,
    break_penalty,
    ends_sentence,
    fits,
    is_punctuation,
    join_units,
    wrap,
    wrap_with_cost,
)
from .rules import CHAIN_GAP, MAX_LAG, MAX_LEAD, LanguageRules, Limits, SubtitleOptions

#: DP costs: each cue, and a fragment that is an orphan.
CUE_COST = 4.0
ORPHAN_COST = 25.0
#: Words shorter than this, at most this far apart, are "stacked" (see spread_piles).
PILE = 0.02
PILE_WORDS = 3
#: DP cost of a cue that starts a sentence and cuts it off mid-phrase.
STRADDLE_COST = 4.0
#: DP cost of a cue with too little time to be read (times the missing fraction).
SHORT_COST = 40.0
#: A break at a silence at least this long is as good as one after a clause.
BREATH = 0.3


@dataclass(frozen=True)
class Cue:
    """One subtitle event: times in seconds, its lines, and the units (words) shown."""

    start: float
    end: float
    lines: tuple[str, ...]
    units: tuple[Unit, ...]
    line_units: tuple[tuple[int, ...], ...]
    block: int = 0
    #: Who speaks (diarized transcripts), else None.
    speaker: str | None = None
    #: Visible text before the first word of the first line (``[SPEAKER_1]``), or "".
    label: str = ""

    @property
    def text(self) -> str:
        """The lines joined with newlines."""
        return "\n".join(self.lines)


def separation(limits: Limits) -> float:
    """Cues on either side of a pause are kept at least this far apart, and the linter
    treats cues closer than this as one stretch of speech (for the orphan rule)."""
    return min(CHAIN_GAP, limits.split_on_pause) / 2


# --- 1. units -------------------------------------------------------------------------


def _tokens_of(segment: Segment, rules: LanguageRules) -> list[Unit]:
    """The segment's words as units (not yet merged); proportional timing without words."""
    if segment.words:
        return [
            Unit(w.word.strip(), float(w.start), float(w.end), w.word[:1].isspace())
            for w in segment.words
            if w.word.strip()
        ]
    return _proportional(segment, rules)


def _split_unspaced(text: str) -> list[tuple[str, bool]]:
    """Japanese/Chinese text without word timings: runs of Latin letters/digits stay
    together, other characters are units of their own (punctuation joins later)."""
    pieces: list[tuple[str, bool]] = []
    for chunk_index, chunk in enumerate(text.split()):
        for m in re.finditer(r"[A-Za-z0-9'.,-]+|.", chunk):
            pieces.append((m.group(), chunk_index > 0 and m.start() == 0))
    return pieces


def _proportional(segment: Segment, rules: LanguageRules) -> list[Unit]:
    """Words of a segment without word timings, timed in proportion to their width."""
    text = segment.text.strip()
    if not text:
        return []
    pieces = [(w, True) for w in text.split()] if rules.spaced else _split_unspaced(text)
    weights = [max(len(p), 1) for p, _ in pieces]
    total = float(sum(weights))
    span = max(segment.end - segment.start, 0.0)
    units: list[Unit] = []
    acc = 0.0
    for (piece, space), weight in zip(pieces, weights, strict=True):
        start = segment.start + span * acc / total
        acc += weight
        units.append(Unit(piece, start, segment.start + span * acc / total, space))
    return units


def transcript_units(transcript: Transcript, rules: LanguageRules) -> list[Unit]:
    """Every unit of the transcript, in order. In spaced languages a token that does not
    start with a space belongs to the word before it (an eojeol is never split); in every
    language punctuation without a space before it belongs to the word before it (of the
    same speaker)."""
    return [u for u, _ in _speaker_units(transcript, rules)]


def _speaker_units(transcript: Transcript, rules: LanguageRules) -> list[tuple[Unit, str | None]]:
    """:func:`transcript_units`, each with the speaker of its segment."""
    units: list[Unit] = []
    speakers: list[str | None] = []
    for segment in transcript.segments:
        for i, tok in enumerate(_tokens_of(segment, rules)):
            # A token without a space before it belongs to the word before it: punctuation
            # (",", "."), the rest of an eojeol. One with a space stays apart, as the text
            # has it ("Johnson & Johnson", "그는 - 아마도", "« oui »").
            glue = not tok.space_before and (is_punctuation(tok.text) or (rules.spaced and i > 0))
            if units and glue and speakers[-1] == segment.speaker:
                prev = units[-1]
                units[-1] = Unit(
                    prev.text + tok.text, prev.start, max(prev.end, tok.end), prev.space_before
                )
            else:
                start = max(tok.start, units[-1].end) if units else tok.start
                units.append(
                    Unit(
                        tok.text,
                        start,
                        max(tok.end, start),
                        True if rules.spaced else tok.space_before,
                    )
                )
                speakers.append(segment.speaker)
    return list(zip(units, speakers, strict=True))


def _pile_end(units: Sequence[Unit], i: int) -> int:
    """Index after the run of zero-duration units stacked at ``units[i].start``."""
    j = i
    while (
        j < len(units)
        and units[j].end - units[j].start < PILE
        and abs(units[j].start - units[i].start) < PILE
    ):
        j += 1
    return j


def spread_piles(units: Sequence[Unit], limits: Limits) -> list[Unit]:
    """Three or more words stacked at one instant (zero duration: Whisper does this with
    repeated words at the end of a window) get their reading time from that instant on;
    later words move along if they would overlap. Other words keep their times."""
    out: list[Unit] = []
    i = 0
    while i < len(units):
        j = _pile_end(units, i)
        if j - i < PILE_WORDS:
            j = i + 1
        at = max(units[i].start, out[-1].end if out else 0.0)
        for unit in units[i:j]:
            if j - i >= PILE_WORDS:
                length = (limits.width(unit.text) + limits.width(" ")) / limits.max_cps
            else:
                length = max(unit.end - at, 0.0)
            out.append(Unit(unit.text, at, at + length, unit.space_before))
            at += length
        i = j
    return out


# --- 2. blocks ------------------------------------------------------------------------


def split_blocks(units: Sequence[Unit], pause: float) -> list[list[Unit]]:
    """Runs of units with no silence longer than ``pause`` between them."""
    blocks: list[list[Unit]] = []
    for unit in units:
        if blocks and unit.start - blocks[-1][-1].end <= pause:
            blocks[-1].append(unit)
        else:
            blocks.append([unit])
    return blocks


# --- 3. grouping ----------------------------------------------------------------------


def _labelled(units: Sequence[Unit], label: str) -> list[Unit]:
    """The units of a cue as they are measured: the label (if any) first, a space after it."""
    if not label or not units:
        return list(units)
    first = units[0]
    return [
        Unit(label, first.start, first.start),
        Unit(first.text, first.start, first.end, True),
        *units[1:],
    ]


def _boundary_cost(block: Sequence[Unit], j: int, limits: Limits) -> float:
    """Cost of ending a cue after ``block[j]`` (inside the block)."""
    cost = break_penalty(block[j].text, block[j + 1].text, limits.rules.style)
    if block[j + 1].start - block[j].end >= BREATH and cost < P_ADNOMINAL:
        # A pause is a good place to cut, but not between words that belong together
        # (두 | 소년, 흰 | 바탕에: a determiner or modifier and its noun).
        cost = min(cost, 1.0)
    return cost


def _cue_cost(block: Sequence[Unit], i: int, j: int, limits: Limits, label: str = "") -> float:
    """Cost of one cue made of ``block[i..j]`` (shown after ``label``)."""
    shown = _labelled(block[i : j + 1], label)
    cost = CUE_COST + wrap_with_cost(shown, limits)[1]
    if j + 1 < len(block):
        end_cost = _boundary_cost(block, j, limits)
        cost += end_cost
        style = limits.rules.style
        if end_cost >= P_DEFAULT and any(ends_sentence(u.text, style) for u in block[i:j]):
            cost += STRADDLE_COST  # a new sentence starts in the cue and is cut off
    duration = block[j].end - block[i].start
    if (j - i + 1 <= 2 or duration < limits.min_cue_duration) and len(block) > j - i + 1:
        cost += ORPHAN_COST
    width = limits.width(join_units(shown))
    need = max(limits.min_cue_duration, width / limits.max_cps)
    room = (block[j + 1].start if j + 1 < len(block) else block[j].end + MAX_LAG) - block[i].start
    if room < need:  # the cue could not be shown long enough to be read
        cost += SHORT_COST * (need - room) / need
    return cost


def group_units(block: Sequence[Unit], limits: Limits, label: str = "") -> list[list[Unit]]:
    """Cut one block into cues: every cue (the first with ``label`` before its first word)
    fits the lines and the maximum duration (a single unit that cannot is a cue of its
    own), at the lowest total cost."""
    n = len(block)
    inf = float("inf")
    best = [inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == inf:
            continue
        for j in range(i, n):
            lab = label if i == 0 else ""
            if j > i and (
                block[j].end - block[i].start > limits.max_cue_duration
                or not fits(_labelled(block[i : j + 1], lab), limits)
            ):
                break
            cost = best[i] + _cue_cost(block, i, j, limits, lab)
            if cost < best[j + 1]:
                best[j + 1], back[j + 1] = cost, i
    groups: list[list[Unit]] = []
    j = n
    while j > 0:
        i = back[j]
        groups.append(list(block[i:j]))
        j = i
    return groups[::-1]


# --- 4. timing ------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _lines(
    units: Sequence[Unit], limits: Limits, label: str = ""
) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """The cue's lines (the label starts the first) and the indices of ``units`` on each."""
    shown = _labelled(units, label)
    parts = wrap(shown, limits)
    lines = tuple(join_units([shown[k] for k in part]) for part in parts)
    skip = 1 if len(shown) > len(units) else 0
    return lines, tuple(tuple(k - skip for k in part if k >= skip) for part in parts)


def _need_ms(lines: Sequence[str], limits: Limits) -> int:
    """Display time the text needs: the minimum duration, or its reading time."""
    reading = limits.cue_width(list(lines)) / limits.max_cps
    return math.ceil(max(limits.min_cue_duration, reading) * 1000 - 1e-6)


def time_cues(
    groups: Sequence[Sequence[Unit]],
    blocks: Sequence[int],
    limits: Limits,
    duration: float = 0.0,
    pauses: Sequence[int] | None = None,
    speakers: Sequence[str | None] | None = None,
    labels: Sequence[str] | None = None,
) -> list[Cue]:
    """Display times for the cues (see the module docstring, step 4); ``duration`` is the
    audio's length (the last cue may be shown until then). ``pauses`` numbers the runs
    between silences (default ``blocks``): a block boundary inside one run (a change of
    speaker) is timed as chained speech. ``speakers`` and ``labels`` are per cue."""
    pauses = blocks if pauses is None else pauses
    speakers = speakers if speakers is not None else [None] * len(groups)
    labels = labels if labels is not None else [""] * len(groups)
    end_ms = _ms(duration)
    gap = math.ceil(limits.min_gap * 1000 - 1e-6)
    sep, lag, lead = _ms(separation(limits)), _ms(MAX_LAG), _ms(MAX_LEAD)
    chain, maxd = _ms(CHAIN_GAP), int(limits.max_cue_duration * 1000)
    ss = [_ms(g[0].start) for g in groups]
    se = [max(_ms(g[-1].end), _ms(g[0].start)) for g in groups]
    wrapped = [_lines(g, limits, lab) for g, lab in zip(groups, labels, strict=True)]
    needs = [_need_ms(lines, limits) for lines, _ in wrapped]
    starts: list[int] = []
    ends: list[int] = []
    for i in range(len(groups)):
        crossed = i > 0 and pauses[i] != pauses[i - 1]
        lo = (ends[-1] if ends else -gap) + (max(gap, sep) if crossed else gap)
        s = max(ss[i], lo)
        need = needs[i]
        if i + 1 < len(groups):
            apart = pauses[i + 1] != pauses[i]
            if apart:  # a pause follows: its silence is free, up to the separation
                soft = hard = ss[i + 1] - max(gap, sep)
            else:  # chained: may push the next cue, by at most MAX_LAG
                soft = ss[i + 1] - gap
                hard = min(ss[i + 1] + lag - gap, se[i] + lag)
        else:  # the last cue: up to the end of the audio (at least MAX_LAG past its speech),
            # and always for the minimum duration (no cue follows it: a one-word file of
            # 0.75 s had a 0.78 s cue, under the minimum its own check then reported)
            shortest = s + math.ceil(limits.min_cue_duration * 1000 - 1e-6)
            apart, soft = True, max(se[i], min(s + need, max(se[i] + lag, end_ms, shortest)))
            hard = soft
        hard = min(hard, s + maxd)
        soft = min(soft, hard)
        e = max(min(se[i], soft), s + 1)
        if not apart and soft - e < chain:
            e = max(e, soft)
        if e - s < need:
            e = max(e, min(s + need, soft))
        if e - s < need:
            s = min(s, max(e - need, lo, ss[i] - lead))
        if e - s < need and i > 0 and not crossed:
            # take the time from the cue before when it has more than it needs
            target = max(e - need, ss[i] - lead, starts[-1] + needs[i - 1] + gap)
            if target < s:
                ends[-1] = min(ends[-1], target - gap)
                s = target
        if e - s < need:
            e = max(e, min(s + need, hard))
        starts.append(s)
        ends.append(max(min(e, s + maxd), s + 1))
    return [
        Cue(s / 1000, e / 1000, lines, tuple(g), parts, b, spk, lab)
        for s, e, (lines, parts), g, b, spk, lab in zip(
            starts, ends, wrapped, groups, blocks, speakers, labels, strict=True
        )
    ]


# --- 5. orphans -----------------------------------------------------------------------


def merged_fits(first: Cue, second: Cue, limits: Limits) -> bool:
    """Whether one cue with both cues' words, shown from the first's start to the second's
    end, keeps the line, duration and reading-speed limits."""
    units = first.units + second.units
    if not fits(_labelled(units, first.label), limits):
        return False
    duration = second.end - first.start
    if duration > limits.max_cue_duration + 1e-6:
        return False
    lines, _ = _lines(units, limits, first.label)
    return limits.cue_width(list(lines)) <= limits.max_cps * duration + 1e-6


def _is_orphan(cue: Cue, limits: Limits) -> bool:
    return len(cue.units) <= 2 or cue.end - cue.start < limits.min_cue_duration - 1e-6


def _merge(first: Cue, second: Cue, limits: Limits) -> Cue:
    units = first.units + second.units
    lines, parts = _lines(units, limits, first.label)
    return Cue(
        first.start, second.end, lines, units, parts, first.block, first.speaker, first.label
    )


def merge_orphans(cues: list[Cue], limits: Limits) -> list[Cue]:
    """Merge each orphan into a neighbour of its block when the result keeps the limits;
    a fragment that ends a sentence prefers the cue before it."""
    out = list(cues)
    changed = True
    while changed:
        changed = False
        for k, cue in enumerate(out):
            if not _is_orphan(cue, limits):
                continue
            options = []
            if k > 0 and out[k - 1].block == cue.block:
                options.append(k - 1)
            if k + 1 < len(out) and out[k + 1].block == cue.block:
                options.append(k + 1)
            ends_sentence = cue.text.rstrip()[-1:] in ".?!。？！…"
            options.sort(key=lambda m: (m > k) == ends_sentence)
            for m in options:
                a, b = (out[m], cue) if m < k else (cue, out[m])
                if merged_fits(a, b, limits):
                    lo = min(m, k)
                    out[lo : lo + 2] = [_merge(a, b, limits)]
                    changed = True
                    break
            if changed:
                break
    return out


# --- the builder ----------------------------------------------------------------------


def speaker_blocks(
    units: Sequence[Unit], speakers: Sequence[str | None], pause: float
) -> list[tuple[int, str | None, list[Unit]]]:
    """:func:`split_blocks`, also split where the speaker changes: ``(pause run, speaker,
    units)`` per block; the pause run counts the silences longer than ``pause`` before it."""
    out: list[tuple[int, str | None, list[Unit]]] = []
    run = -1
    for unit, speaker in zip(units, speakers, strict=True):
        paused = not out or unit.start - out[-1][2][-1].end > pause
        run += paused
        if not paused and out[-1][1] == speaker:
            out[-1][2].append(unit)
        else:
            out.append((run, speaker, [unit]))
    return out


def build_cues(
    transcript: Transcript,
    options: SubtitleOptions | None = None,
    label: Callable[[str], str] | None = None,
) -> list[Cue]:
    """The transcript's subtitle cues under ``options`` (defaults by each segment's
    language: a file that changes language gets each stretch's own limits, never one cue
    across the change). In a diarized transcript no cue mixes two speakers; ``label(speaker)``
    is visible text put before the words of the cue where a speaker starts talking
    (``[SPEAKER_1]``; the cues after it, of the same speaker, go without), measured with
    them."""
    runs = _language_runs(transcript)
    if len(runs) <= 1:
        return _build_cues(transcript, options, label)
    cues: list[Cue] = []
    gap = 0.0
    for k, segments in enumerate(runs):
        until = runs[k + 1][0].start if k + 1 < len(runs) else transcript.duration
        language = segments[0].language or transcript.language
        part = replace(transcript, segments=segments, language=language, duration=until)
        built = _build_cues(part, options, label)
        gap = max(gap, (options or SubtitleOptions()).limits(language).min_gap)
        if cues and built:  # where the language changes: no overlap, the minimum gap kept
            last, first = cues[-1], built[0]
            end = max(last.start + 0.001, min(last.end, first.start - gap))
            cues[-1] = replace(last, end=round(end, 3))
            if first.start < cues[-1].end + gap:
                start = round(cues[-1].end + gap, 3)
                built[0] = replace(first, start=min(start, first.end - 0.001))
        cues += built
    return cues


def _language_runs(transcript: Transcript) -> list[list[Segment]]:
    """Consecutive segments of one language (segments without one join the run before)."""
    runs: list[list[Segment]] = []
    for seg in transcript.segments:
        lang = seg.language or (runs[-1][0].language if runs else None)
        if runs and (runs[-1][0].language or transcript.language) == (lang or transcript.language):
            runs[-1].append(seg)
        else:
            runs.append([seg])
    return runs


def _build_cues(
    transcript: Transcript,
    options: SubtitleOptions | None,
    label: Callable[[str], str] | None,
) -> list[Cue]:
    limits = (options or SubtitleOptions()).limits(transcript.language)
    pairs = _speaker_units(transcript, limits.rules)
    units = spread_piles([u for u, _ in pairs], limits)
    groups: list[list[Unit]] = []
    block_ids: list[int] = []
    pause_ids: list[int] = []
    speakers: list[str | None] = []
    labels: list[str] = []
    blocks = speaker_blocks(units, [s for _, s in pairs], limits.split_on_pause)
    for b, (run, speaker, block) in enumerate(blocks):
        turn = speaker is not None and (b == 0 or blocks[b - 1][1] != speaker)
        text = label(speaker) if label and speaker and turn else ""
        for k, group in enumerate(group_units(block, limits, text)):
            groups.append(group)
            block_ids.append(b)
            pause_ids.append(run)
            speakers.append(speaker)
            labels.append(text if k == 0 else "")
    timed = time_cues(groups, block_ids, limits, transcript.duration, pause_ids, speakers, labels)
    return merge_orphans(timed, limits)


# --- karaoke --------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text safe inside an ASS event (pysubs2's model): no override braces."""
    return text.replace("{", "(").replace("}", ")")


def cue_text(cue: Cue, highlight: int | None = None) -> str:
    """The cue in pysubs2's ASS markup: ``\\N`` between lines, the unit at index
    ``highlight`` underlined (``<u>`` in SRT/WebVTT), as openai-whisper's --highlight_words."""
    lines = []
    for n_line, part in enumerate(cue.line_units):
        line = _escape(cue.label) if cue.label and n_line == 0 else ""
        for n, k in enumerate(part):
            unit = cue.units[k]
            word = _escape(unit.text)
            if k == highlight:
                word = "{\\u1}" + word + "{\\u0}"
            line += (" " if line and (n == 0 or unit.space_before) else "") + word
        lines.append(line)
    return "\\N".join(lines)


def karaoke(cue: Cue) -> list[tuple[float, float, str]]:
    """Back-to-back events covering the cue, each with the word being spoken underlined
    (the next word takes over at its start time)."""
    bounds: list[tuple[int, int]] = []  # (start ms, unit index)
    start_ms, end_ms = _ms(cue.start), _ms(cue.end)
    for k, unit in enumerate(cue.units):
        at = start_ms if k == 0 else min(max(_ms(unit.start), start_ms), end_ms)
        if bounds and at <= bounds[-1][0]:
            continue
        if at < end_ms:
            bounds.append((at, k))
    out = []
    for n, (at, k) in enumerate(bounds):
        until = bounds[n + 1][0] if n + 1 < len(bounds) else end_ms
        out.append((at / 1000, until / 1000, cue_text(cue, k)))
    return out
