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


def split_by_language(
    window: Any,
    language: str,
    left: str | None,
    right: str | None,
    detect: Any,
) -> list[tuple[Any, str]]:
    """Input: a window next to a change of language, its detected language, the languages
    of the windows before and after it, and ``detect(window) -> language`` (one encoder
    pass). Output: the window cut at piece boundaries into runs of one language, in order.

    A window holds at most one change on each side (30 s): a binary search finds the
    longest run of pieces at its start that is still in ``left`` and at its end in
    ``right``, about log2(pieces) encoder passes per side, only where the language
    changes."""
    from .windows import sub_window

    pieces = window.pieces
    n = len(pieces)
    start, stop = 0, n
    if (
        left is not None
        and left != language
        and n > 1
        and detect(sub_window(window, pieces[:1])) == left
    ):
        lo, hi = 1, n - 1  # the longest prefix pieces[:k] detected as `left`
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if detect(sub_window(window, pieces[:mid])) == left:
                lo = mid
            else:
                hi = mid - 1
        start = lo
    if (
        right is not None
        and right != language
        and n - start > 1
        and detect(sub_window(window, pieces[-1:])) == right
    ):
        lo, hi = start + 1, n - 1  # the longest suffix pieces[j:] detected as `right`
        while lo < hi:
            mid = (lo + hi) // 2
            if detect(sub_window(window, pieces[mid:])) == right:
                hi = mid
            else:
                lo = mid + 1
        stop = lo
    runs = [(pieces[:start], left), (pieces[start:stop], language), (pieces[stop:], right)]
    kept = [(p, lang) for p, lang in runs if p and lang is not None]
    if len(kept) == 1:
        return [(window, kept[0][1])]
    return [(sub_window(window, p), lang) for p, lang in kept]
