"""WER and CER with jiwer, after a normalizer that suits the language.

- English: Whisper's English text normalizer (spelling, numbers, contractions), through
  whisper-normalizer, so scores compare with published Whisper numbers.
- Other languages: Whisper's basic normalizer (lower-case, no punctuation or symbols).
- CER is computed on the normalized text without spaces: the headline figure for Korean,
  Japanese and Chinese, whose word boundaries are not comparable across systems.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

#: Languages scored by CER first (no or unreliable whitespace word boundaries).
CER_LANGUAGES = frozenset({"ko", "ja", "zh", "yue", "th", "lo", "my", "km"})


@cache
def _normalizer(language: str) -> Any:
    if language == "en":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize(text: str, language: str) -> str:
    return " ".join(str(_normalizer(language)(text)).split())


@dataclass(frozen=True)
class Score:
    """Error counts of one hypothesis against one reference (words, then characters)."""

    ref_words: int
    substitutions: int
    insertions: int
    deletions: int
    raw_errors: int  # word errors before normalization
    raw_ref_words: int
    ref_chars: int
    char_errors: int
    diff: str  # the normalized reference with errors marked
    #: Character edits that only move word boundaries: edits with spaces counted minus
    #: edits without (reported apart from CER for Korean, Japanese, Chinese).
    space_errors: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.insertions + self.deletions

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)

    @property
    def raw_wer(self) -> float:
        return self.raw_errors / self.raw_ref_words if self.raw_ref_words else 0.0

    @property
    def cer(self) -> float:
        return self.char_errors / self.ref_chars if self.ref_chars else float(self.char_errors > 0)


def _marked(ref: list[str], hyp: list[str], alignment: list[Any]) -> str:
    """``a [b→c] [+d] [-e]``: substitution, insertion, deletion marked inline."""
    out: list[str] = []
    for chunk in alignment:
        r = ref[chunk.ref_start_idx : chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "equal":
            out.extend(r)
        elif chunk.type == "substitute":
            out.extend(f"[{a}→{b}]" for a, b in zip(r, h, strict=True))
        elif chunk.type == "insert":
            out.extend(f"[+{b}]" for b in h)
        elif chunk.type == "delete":
            out.extend(f"[-{a}]" for a in r)
    return " ".join(out)


def score(reference: str, hypothesis: str, language: str) -> Score:
    import jiwer

    ref_n, hyp_n = normalize(reference, language), normalize(hypothesis, language)
    ref_w, hyp_w = ref_n.split(), hyp_n.split()
    if ref_w:
        words = jiwer.process_words(ref_n, hyp_n if hyp_w else "")
        subs, ins, dels = words.substitutions, words.insertions, words.deletions
        diff = _marked(ref_w, hyp_w, words.alignments[0])
    else:
        subs, dels, ins, diff = 0, 0, len(hyp_w), " ".join(f"[+{w}]" for w in hyp_w)
    raw_ref, raw_hyp = reference.split(), hypothesis.split()
    raw_errors = (
        jiwer.process_words(" ".join(raw_ref), " ".join(raw_hyp)).wer * len(raw_ref)
        if raw_ref
        else len(raw_hyp)
    )
    ref_c, hyp_c = ref_n.replace(" ", ""), hyp_n.replace(" ", "")
    space_errors = 0
    if ref_c:
        chars = jiwer.process_characters(ref_c, hyp_c)
        char_errors = chars.substitutions + chars.insertions + chars.deletions
        spaced = jiwer.process_characters(ref_n, hyp_n if hyp_n else "")
        spaced_errors = spaced.substitutions + spaced.insertions + spaced.deletions
        space_errors = max(0, spaced_errors - char_errors)
    else:
        char_errors = len(hyp_c)
    return Score(
        len(ref_w), subs, ins, dels, round(raw_errors), len(raw_ref), len(ref_c), char_errors, diff,
        space_errors,
    )  # fmt: skip


def headline(language: str) -> str:
    """The metric to lead with for a language: "cer" or "wer"."""
    return "cer" if language in CER_LANGUAGES else "wer"
