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


def detect_languages(
    whisper: Any,
    encoded_batch: Any,
    previous: str | None,
    allowed: frozenset[str] | None = None,
) -> list[tuple[str, float]]:
    """Input: a ``StorageView`` of encoder outputs and the language of the window before.
    Output: (language code, probability) per window, in order."""
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
        previous = lang
    return out
