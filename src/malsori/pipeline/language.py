"""Stage 5a: the language of each window, from its encoder output.

With no language given, every window gets its own (``Whisper.detect_language``: one
decoder step on the encoder output already computed, ~1% of a window's cost). A window
whose top language is unsure (p < 0.5) keeps the previous window's language when that one
is still a likely candidate (p >= 0.2): short or noisy stretches do not flip the language.
"""

from __future__ import annotations

from typing import Any

#: Below this the top language of a window is not trusted on its own.
SURE = 0.5
#: ... and the previous window's language is kept if it has at least this probability.
PLAUSIBLE = 0.2
#: A runner-up this likely may be spoken in part of the window: its ends are checked.
#: (30 s of which 22 s English and 8 s Korean detects as ko 0.93, en 0.07.)
MIXED = 0.05


def detect_languages(
    whisper: Any,
    encoded_batch: Any,
    previous: str | None,
    allowed: frozenset[str] | None = None,
    alternatives: list[tuple[str, float]] | None = None,
) -> list[tuple[str, float]]:
    """Input: a ``StorageView`` of encoder outputs and the language of the window before.
    Output: (language code, probability) per window, in order; the runner-up of each
    window is appended to ``alternatives`` when given."""
    out: list[tuple[str, float]] = []
    for ranking in whisper.detect_language(encoded_batch):
        probs = [(tok[2:-2], float(p)) for tok, p in ranking]
        if allowed:
            probs = [lp for lp in probs if lp[0] in allowed] or probs
        lang, p = probs[0]
        if p < SURE and previous is not None:
            prev_p = next((q for code, q in probs if code == previous), 0.0)
            if prev_p >= PLAUSIBLE:
                lang, p = previous, prev_p
        out.append((lang, p))
        if alternatives is not None:
            alternatives.append(next(((c, q) for c, q in probs if c != lang), ("", 0.0)))
        previous = lang
    return out


#: The speech heard to place a change of language: the piece (VAD region, usually one
#: utterance) next to a candidate boundary, grown by its neighbours away from the
#: boundary while shorter than this (a syllable or two is too little to tell).
SPAN_SECONDS = 1.0


def _span(pieces: Any, lo: int, hi: int, *, leftwards: bool) -> Any:
    """``pieces[lo:hi]`` grown away from the boundary until it holds SPAN_SECONDS of
    speech: ``leftwards`` keeps ``hi`` (the pieces just before a boundary), otherwise it
    keeps ``lo`` (the pieces just after)."""
    from ..audio import SAMPLE_RATE

    def seconds(i: int, j: int) -> float:
        return float(sum(p.length for p in pieces[i:j])) / SAMPLE_RATE

    if leftwards:
        i = hi - 1
        while i > lo and seconds(i, hi) < SPAN_SECONDS:
            i -= 1
        return pieces[i:hi]
    j = lo + 1
    while j < hi and seconds(lo, j) < SPAN_SECONDS:
        j += 1
    return pieces[lo:j]


def split_by_language(
    window: Any,
    language: str,
    left: str | None,
    right: str | None,
    detect: Any,
) -> list[tuple[Any, str]]:
    """Input: a window next to a change of language, its detected language, the languages
    of the windows before and after it, and ``detect(window) -> language or None`` (one
    encoder pass; None when the speech sounds like none of the file's languages, e.g. a
    dialect heard alone). Output: the window cut at piece boundaries into runs of one
    language, in order. A piece heard as no language stays with the speech before it.

    A window holds at most one change on each side (30 s). A binary search over the
    pieces finds where ``left`` ends and where ``right`` begins, about log2(pieces)
    encoder passes per side, only where the language changes. Each probe hears the piece
    next to the candidate boundary (:data:`SPAN_SECONDS`), not everything on one side of
    it: 15 s of English and 7 s of Korean are detected as English, so a probe of the
    whole side moved the boundary into the other language and its speech was decoded in
    the wrong one (or dropped). Probes of 2.5-3 s spans, grown into the neighbouring
    pieces, did the same to a short last sentence (docs/pipeline.md)."""
    from .windows import sub_window

    pieces = window.pieces
    n = len(pieces)

    def heard(lo: int, hi: int, *, leftwards: bool) -> str | None:
        found = detect(sub_window(window, _span(pieces, lo, hi, leftwards=leftwards)))
        return None if found is None else str(found)

    def still_left(lang: str | None) -> bool:  # an unclear piece stays with what precedes it
        return lang is None or lang == left

    start, stop = 0, n
    if left is not None and left != language and n > 1 and still_left(heard(0, n, leftwards=False)):
        lo, hi = 1, n - 1  # the last k such that the speech just before piece k is `left`
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if still_left(heard(0, mid, leftwards=True)):
                lo = mid
            else:
                hi = mid - 1
        start = lo
    if (
        right is not None
        and right != language
        and n - start > 1
        and heard(start, n, leftwards=True) == right
    ):
        lo, hi = start + 1, n - 1  # the first j such that the speech from piece j is `right`
        while lo < hi:
            mid = (lo + hi) // 2
            if heard(mid, n, leftwards=False) == right:
                hi = mid
            else:
                lo = mid + 1
        stop = lo
    runs = [(pieces[:start], left), (pieces[start:stop], language), (pieces[stop:], right)]
    kept = [(p, lang) for p, lang in runs if p and lang is not None]
    if len(kept) == 1:
        return [(window, kept[0][1])]
    return [(sub_window(window, p), lang) for p, lang in kept]
