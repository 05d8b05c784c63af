"""Stage 5a: the language of each window, from its encoder output.

With no language given, every window gets its own (``Whisper.detect_language``: one
decoder step on the encoder output already computed, ~1% of a window's cost). A window
whose top language is unsure (p < 0.5) keeps the previous window's language when that one
is still a likely candidate (p >= 0.2): short or noisy stretches do not flip the language.
"""

from __future__ import annotations

import warnings
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


#: A piece (VAD region) heard this surely in one language, and at least this long, decides
#: the language of its stretch when a window's pieces are heard one by one.
PIECE_SURE = 0.8
PIECE_SECONDS = 1.0
#: ... when the languages it may be in have together at least this probability.
PIECE_MASS = 0.3
#: Encoder frames per second (Whisper: 1500 per 30 s).
_FRAMES_PER_SECOND = 50


def piece_languages(
    whisper: Any, encoded: Any, window: Any, allowed: frozenset[str]
) -> list[tuple[str, float]]:
    """Input: a window, its encoder output (1500 x d_model, numpy) and the languages it may
    hold. Output: (language, probability among ``allowed``) of each of its pieces, from the
    decoder's language step on that piece's own encoder frames (the window's encoder output
    cropped to the piece: one decoder step per piece, no encoder pass). A piece whose
    allowed languages together have less than :data:`PIECE_MASS` gets probability 0 (a
    noise, a laugh, a dialect: it follows its neighbours). Alternating 3-10 s English and
    Korean sentences in one window were each right at p 0.72-1.0, where the window as a
    whole was "ko 0.54" and both languages were decoded as one (a hostile tester)."""
    import ctranslate2
    import numpy as np

    from ..audio import SAMPLE_RATE

    step = SAMPLE_RATE // _FRAMES_PER_SECOND
    out: list[tuple[str, float]] = []
    for p in window.pieces:
        a = min(len(encoded) - 1, p.offset // step)
        b = min(len(encoded), max(a + 1, -(-(p.offset + p.length) // step)))
        crop = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[a:b][None]))
        ranking = whisper.detect_language(crop)[0]
        probs = [(tok[2:-2], float(q)) for tok, q in ranking if tok[2:-2] in allowed]
        mass = sum(q for _, q in probs)
        if not probs or mass < PIECE_MASS:
            out.append((probs[0][0] if probs else "", 0.0))
            continue
        lang, q = max(probs, key=lambda lp: lp[1])
        out.append((lang, q / mass))
    return out


def runs_from_pieces(
    pieces: Any, labels: list[tuple[str, float]]
) -> list[tuple[tuple[Any, ...], str]] | None:
    """Input: a window's pieces and their languages (:func:`piece_languages`). Output: the
    pieces in runs of one language, when the pieces heard surely (:data:`PIECE_SURE`, at
    least :data:`PIECE_SECONDS`) are in two languages or more; None otherwise. A piece not
    heard surely joins a neighbouring run: the one in the language it leans to, however
    weakly (a short "글쎄요." before a Korean sentence, after English; "과일 코너는", Latin
    to Whisper and Korean at p 0.02; the Gyeongsang dialect, Korean at p 0.61 among English
    and Korean: decoded as English it was translated), else the run before it (the first
    ones, the run after them)."""
    from ..audio import SAMPLE_RATE

    sure = [
        lang if p >= PIECE_SURE and piece.length >= PIECE_SECONDS * SAMPLE_RATE else None
        for piece, (lang, p) in zip(pieces, labels, strict=True)
    ]
    if len({lang for lang in sure if lang is not None}) < 2:
        return None
    decided: list[str] = []
    for i, known in enumerate(sure):
        if known is not None:
            decided.append(known)
            continue
        before = decided[-1] if decided else None
        after = next((lang for lang in sure[i + 1 :] if lang is not None), None)
        leaning = labels[i][0] or None  # its likelier language, however unsure
        if leaning is not None and leaning in (before, after):
            decided.append(leaning)
        else:
            decided.append(before or after or "")
    runs: list[tuple[list[Any], str]] = []
    for piece, lang in zip(pieces, decided, strict=True):
        if runs and runs[-1][1] == lang:
            runs[-1][0].append(piece)
        else:
            runs.append(([piece], lang))
    return [(tuple(ps), lang) for ps, lang in runs]


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


#: Speech per probe when a window's runner-up language is looked for away from its ends
#: (at most about 8 probes for a 30 s window): a sentence or two.
GROUP_SECONDS = 3.75


def _groups(pieces: Any, lo: int, hi: int) -> list[tuple[int, int]]:
    """``pieces[lo:hi]`` as consecutive ranges of at least GROUP_SECONDS of speech each (the
    last one takes what is left over)."""
    from ..audio import SAMPLE_RATE

    out: list[tuple[int, int]] = []
    begin, amount = lo, 0
    for i in range(lo, hi):
        amount += pieces[i].length
        if amount >= GROUP_SECONDS * SAMPLE_RATE:
            out.append((begin, i + 1))
            begin, amount = i + 1, 0
    if begin < hi:
        if out and amount < GROUP_SECONDS * SAMPLE_RATE / 2:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((begin, hi))
    return out


def _first(lo: int, hi: int, test: Any) -> int:
    """The first ``i`` in ``[lo, hi]`` for which ``test(i)`` holds, by binary search: it is
    assumed to hold at ``hi`` and, once it holds, from there on."""
    while lo < hi:
        mid = (lo + hi) // 2
        if test(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _last(lo: int, hi: int, test: Any) -> int:
    """The last ``i`` in ``[lo, hi]`` for which ``test(i)`` holds, by binary search: it is
    assumed to hold at ``lo`` and, once it fails, from there on."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if test(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _islands(
    pieces: Any, lo: int, hi: int, language: str, inside: str, heard: Any, heard_all: Any
) -> list[tuple[int, int]]:
    """Piece ranges of ``pieces[lo:hi]`` spoken in ``inside``, in order and disjoint. Each
    group of :data:`GROUP_SECONDS` is heard whole; a run of groups heard as ``inside``,
    with the unclear groups (None) next to it, is an island. Its edges are then placed
    piece by piece: grown into a neighbouring group heard as ``language`` by the same
    binary searches as at a window's ends (never into the island before it), trimmed of
    end pieces heard as ``language``, and dropped if what is left is heard as ``language``."""
    groups = _groups(pieces, lo, hi)
    if len(groups) < 2:
        return []
    label = [heard_all(a, b) for a, b in groups]
    out: list[tuple[int, int]] = []
    g = 0
    while g < len(groups):
        if label[g] != inside:
            g += 1
            continue
        first = g
        floor = out[-1][1] if out else lo  # the end of the island before
        while first > 0 and label[first - 1] is None and groups[first - 1][0] >= floor:
            first -= 1
        while g + 1 < len(groups) and label[g + 1] in (inside, None):
            g += 1
        # (the island before may have grown into this group over unclear pieces)
        a, b = max(groups[first][0], floor), groups[g][1]
        if a >= b:
            g += 1
            continue
        if first > 0 and label[first - 1] == language:
            # the first k in the group before such that the speech from k is `inside`
            a = _first(
                max(groups[first - 1][0] + 1, floor),
                a,
                lambda k, b=b: heard(k, b, leftwards=False) == inside,
            )
        if g + 1 < len(groups) and label[g + 1] == language:
            # the last e in the group after such that the speech before e is `inside`
            b = _last(b, groups[g + 1][1] - 1, lambda e, a=a: heard(a, e, leftwards=True) == inside)
        while b - a > 1 and heard(a, b, leftwards=False) == language:
            a += 1
        while b - a > 1 and heard(a, b, leftwards=True) == language:
            b -= 1
        if b - a == 1 and heard(a, b, leftwards=False) == language:
            g += 1
            continue  # nothing of it is heard as `inside` on its own
        # unclear pieces right next to the island join it (a dialect sentence heard alone)
        while a > max(floor, lo) and heard(a - 1, a, leftwards=True) is None:
            a -= 1
        while b < hi and heard(b, b + 1, leftwards=False) is None:
            b += 1
        out.append((a, b))
        g += 1
    return out


def split_by_language(
    window: Any,
    language: str,
    left: str | None,
    right: str | None,
    detect: Any,
    inside: str | None = None,
) -> list[tuple[Any, str]]:
    """Input: a window, its detected language, the languages of the windows before and
    after it (``left``/``right``: None, or the window's own language, when there is no
    change there), the language that may be spoken in part of it (``inside``: its
    runner-up, or None) and ``detect(window) -> language or None`` (one encoder pass;
    None when the speech sounds like none of the file's languages, e.g. a dialect heard
    alone, or a noise). Output: the window cut at piece boundaries into runs of one
    language, in order; every piece in exactly one run.

    Ends: a window holds at most one change on each side (30 s). A binary search over the
    pieces finds where ``left`` ends and where ``right`` begins, about log2(pieces)
    encoder passes per side, only where the language changes. Each probe hears the piece
    next to the candidate boundary (:data:`SPAN_SECONDS`), not everything on one side of
    it: 15 s of English and 7 s of Korean are detected as English, so a probe of the
    whole side moved the boundary into the other language and its speech was decoded in
    the wrong one (or dropped). Probes of 2.5-3 s spans, grown into the neighbouring
    pieces, did the same to a short last sentence (docs/pipeline.md). Unclear pieces stay
    with the speech before them: those that open the window, or directly follow the
    ``left`` run, join it; those before the ``right`` run stay in the window's language.

    Middle: when ``inside`` was not found at an end, it is looked for in groups
    (:func:`_islands`): a Korean sentence within 30 s of English was otherwise decoded as
    English, i.e. dropped. Unclear pieces next to an island join it."""
    from .windows import sub_window

    pieces = window.pieces
    n = len(pieces)

    def heard(lo: int, hi: int, *, leftwards: bool) -> str | None:
        found = detect(sub_window(window, _span(pieces, lo, hi, leftwards=leftwards)))
        return None if found is None else str(found)

    start, stop = 0, n
    found_left = found_right = False
    if left is not None and left != language and n > 1:
        first = heard(0, n, leftwards=False)
        while first is None and start < n - 1:  # unclear pieces that open the window
            start += 1
            first = heard(start, n, leftwards=False)
        if first is None:  # nothing in it is clear alone: the window's detection decides
            start = 0
        elif first == left:
            found_left = True
            # the last k such that the speech just before piece k is `left`
            start = _last(start + 1, n - 1, lambda k: heard(0, k, leftwards=True) == left)
            while start < n - 1 and heard(start, n, leftwards=False) is None:
                start += 1  # unclear pieces right after the `left` run join it
    if (
        right is not None
        and right != language
        and n - start > 1
        and heard(start, n, leftwards=True) == right
    ):
        found_right = True
        # the first j such that the speech from piece j is `right`
        stop = _first(start + 1, n - 1, lambda j: heard(j, n, leftwards=False) == right)
    middle: list[tuple[Any, str | None]] = [(pieces[start:stop], language)]
    found_at_ends = (found_left and left == inside) or (found_right and right == inside)
    if inside is not None and inside != language and not found_at_ends:

        def heard_all(a: int, b: int) -> str | None:
            found = detect(sub_window(window, pieces[a:b]))
            return None if found is None else str(found)

        middle, cursor = [], start
        for a, b in _islands(pieces, start, stop, language, inside, heard, heard_all):
            middle += [(pieces[cursor:a], language), (pieces[a:b], inside)]
            cursor = b
        middle.append((pieces[cursor:stop], language))
    runs: list[tuple[Any, str]] = []
    for part, lang in [(pieces[:start], left), *middle, (pieces[stop:], right)]:
        if not part or lang is None:
            continue
        if runs and runs[-1][1] == lang:  # neighbours in one language make one run
            runs[-1] = (runs[-1][0] + part, lang)
        else:
            runs.append((part, lang))
    if sum(len(p) for p, _ in runs) != n:  # never expected (tests/test_pipeline.py checks
        # it on random windows); if it happens, the window is decoded as it is
        warnings.warn("language split lost or repeated a piece", RuntimeWarning, stacklevel=2)
        return [(window, language)]
    if len(runs) == 1:
        return [(window, runs[0][1])]
    return [(sub_window(window, p), lang) for p, lang in runs]
