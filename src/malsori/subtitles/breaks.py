"""Where text may be broken, into lines or into cues, and how lines are wrapped.

Break points are scored with the Netflix line-treatment rules: after punctuation first,
then before conjunctions and prepositions; never between an article (or a possessive, or a
demonstrative) and its noun, never before a negation, never between a first and a last
name. Korean is broken only between eojeol (the space-separated words); a Korean break is
good after a connective ending (-고, -며, -면, -지만, ...) and before a conjunctive adverb
(그리고, 하지만, ...), and bad before a bound noun (수, 것, 때, ...) or after a demonstrative.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .rules import Limits


def _words(text: str) -> frozenset[str]:
    """A word list written as one space-separated string."""
    return frozenset(text.split())


SENTENCE_END = frozenset(".?!。？！…")
CLAUSE_END = frozenset(",;:、，；：—–")

#: English words a line (or cue) should start with rather than end with.
EN_CONJUNCTIONS = _words(
    "and but or nor so yet because although though while whereas if unless until when "
    "whenever where which who whom whose that since after before as than"
)
EN_PREPOSITIONS = _words(
    "in on at to for with from by of about into onto over under between through "
    "during without within across against among around behind beyond toward towards "
    "upon like"
)
#: Words that belong with the word after them: articles, possessives, demonstratives,
#: titles. A break right after one of them separates it from its noun.
EN_NO_BREAK_AFTER = _words(
    "a an the my your his her its our their this these those mr. mrs. ms. dr. st. "
    "very too more most such"
)
EN_NUMBERS = _words(
    "one two three four five six seven eight nine ten eleven twelve twenty hundred "
    "thousand million first second third fourth fifth last next few several many"
)
#: Auxiliaries and subject pronouns, which belong with the verb after them.
EN_AUXILIARIES = _words(
    "be been being am is are was were have has had do does did will would can could "
    "shall should may might must"
)
EN_SUBJECT_PRONOUNS = _words("i you he she it we they i'm you're he's she's we're they're")
#: Words that belong with the word before them (a verb and its negation).
EN_NO_BREAK_BEFORE = _words("not n't")

KO_CONJUNCTIONS = _words(
    "그리고 그러나 하지만 그런데 그래서 그러면 그러니까 또는 또한 및 "
    "따라서 게다가 그렇지만 그러므로 왜냐하면 혹은 즉 결국 그럼"
)
#: Connective endings: a clause ends here, a good place for a break.
KO_CONNECTIVE_ENDINGS = tuple(
    _words(
        "고 며 면서 면 지만 는데 은데 니까 니 다가 도록 려고 "
        "어서 아서 해서 여서 거나 든지 자 므로 서"
    )
)
#: Determiners that modify the next word (이 책, 그 사람, 모든 것).
KO_NO_BREAK_AFTER = _words(
    "이 그 저 이런 그런 저런 어느 무슨 몇 모든 각 새 헌 온 한 두 세 네 여러 첫 매 옛"
)
#: Numbers, which go with the counter or noun after them (다섯 / 개의 was one cue's end and
#: the next one's start): native and Sino-Korean number words; digits are numbers too.
KO_NUMERALS = _words(
    "하나 둘 셋 넷 다섯 여섯 일곱 여덟 아홉 열 스물 스무 서른 마흔 쉰 예순 일흔 여든 아흔 "
    "서너 두세 두서너 너덧 네댓 대여섯 예닐곱 일고여덟 백 천 만 억 수십 수백 수천 수만"
)
#: Bound nouns (with or without a particle) that cannot start a line: 할 수 있다,
#: 간 적이, 먹을 것을, 그럴 때는.
KO_BOUND_NOUNS = _words("수 것 거 줄 때 데 뿐 듯 적 채 척 체 바 지 만큼 대로 때문 중")
KO_PARTICLES = (
    "",
    "이",
    "가",
    "은",
    "는",
    "을",
    "를",
    "도",
    "의",
    "에",
    "만",
    "야",
    "에는",
    "이다",
    "이야",
    "이었다",
    "였다",
    "입니다",
    "이에요",
    "예요",
    "이지",
    "에게",
)
KO_NO_BREAK_BEFORE = frozenset(n + p for n in KO_BOUND_NOUNS for p in KO_PARTICLES)
#: Auxiliary verbs that stay with the verb before them: 보고 싶다, 가지 않고, 먹지 못했다.
KO_AUXILIARY_STARTS = ("싶", "않", "못했", "못한", "못하")
#: Auxiliaries after a verb's -고 form: 살고 있다, 살고 계십니까 (계시다, the honorific).
KO_AFTER_GO = ("있", "계시", "계셔", "계셨", "계십", "계세", "계신", "계실")  # not 계속, 계획
#: Auxiliaries after a verb's -아/-어 form (먹어 보다, 도와 주다, 잊어 버리다, 적어 놓다,
#: 열어 두다, 해 드리다): the verb's last syllable has the vowel ㅏ/ㅓ/ㅕ/ㅐ/ㅘ/ㅝ (checked on
#: the syllable, so 봐 / 줘 / 해 count too).
KO_AFTER_EO = (
    "보고", "보세", "보았", "보아", "보자", "보니", "보면", "보려", "보기", "봐", "봤", "봅", "볼",
    "주세", "주었", "주고", "주어", "주자", "주면", "주니", "주기", "줘", "줬", "줍", "줄",
    "주셔", "주셨", "주신", "주실",
    "버리", "버려", "버렸", "버린", "버릴", "놓", "놔", "놨", "두었", "두고", "두세", "둬", "뒀",
    "둡", "드리", "드려", "드렸", "드립", "드릴", "드린",
)  # fmt: skip
#: Particles and endings with the same vowel, which take no auxiliary (아버지가 / 보낸,
#: 학교에서 / 보았다, 친구와 / 놓친).
KO_NOT_EO = ("가", "와", "서", "나", "야", "라", "다", "까", "냐", "자", "하", "게")
#: Adjective forms that modify the next word but look like a particle or are one syllable
#: (흰 바탕, 큰 집, 작은 방: 은 is also the topic particle).
KO_SHORT_MODIFIERS = _words(
    "흰 큰 긴 센 먼 찬 빈 젊은 작은 검은 붉은 푸른 높은 낮은 짧은 넓은 좁은 옅은 짙은"
)
#: Words that lean on the word before them: 철석같은 / 것 같지만 / 꽃처럼.
KO_LEANING_STARTS = ("같", "처럼")
#: Sentence-final endings: a statement or question ends here even without punctuation
#: (Whisper often leaves Korean sentences unpunctuated).
KO_FINAL_ENDINGS = ("다", "요", "죠", "까", "니다")

#: Break-quality penalties (lower is better).
P_SENTENCE = 0.0
P_CLAUSE = 1.0
P_CONJUNCTION = 2.0
P_PREPOSITION = 3.0
P_DEFAULT = 5.0
P_NAME = 15.0
#: A modifier away from the word it modifies: Korean 화려한 / 옷을; English may be /
#: considered, we / walked.
P_ADNOMINAL = 8.0
#: A line (or cue) that ends with a conjunction or preposition: "the middle of / the".
P_DANGLING = 12.0
P_FORBIDDEN = 30.0


@dataclass(frozen=True)
class Unit:
    """One unbreakable piece of a cue: a word (a whole eojeol in Korean, a token in
    Japanese/Chinese) with its timing. ``space_before`` says whether a space separates it
    from the unit before it on the same line."""

    text: str
    start: float
    end: float
    space_before: bool = True


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "P"


def is_punctuation(text: str) -> bool:
    """Text made only of punctuation (``,`` ``."`` ``…``)."""
    return bool(text) and all(_is_punct(ch) for ch in text)


def _bare(text: str) -> str:
    """Lower-case word without surrounding punctuation (``"The,`` -> ``the``)."""
    return text.strip().strip("".join(SENTENCE_END | CLAUSE_END) + "\"'“”‘’()[]").lower()


def _is_number(word: str) -> bool:
    """A number or ordinal that goes with the noun after it (15th century, 42 lines)."""
    return bool(re.fullmatch(r"\d+(st|nd|rd|th)?", word)) or word in EN_NUMBERS


def _is_name_part(text: str) -> bool:
    word = text.strip("\"'“”‘’()")
    return len(word) > 1 and word[0].isupper() and word[1:].islower() and word.isalpha()


def break_penalty(before: str, after: str, language: str) -> float:
    """How bad a break between the words ``before`` and ``after`` is (0 = ideal);
    ``language`` is a :attr:`LanguageRules.style` (``en``, ``ko`` or ``other``)."""
    tail = before.rstrip("\"'”’)]」』")
    if tail and tail[-1] in SENTENCE_END:
        return P_SENTENCE
    if tail and tail[-1] in CLAUSE_END:
        return P_CLAUSE
    if language == "ko":
        return _korean_penalty(before, after)
    if language != "en":
        return P_DEFAULT
    prev, nxt = _bare(before), _bare(after)
    if prev in EN_NO_BREAK_AFTER or nxt in EN_NO_BREAK_BEFORE or nxt.startswith("n't"):
        return P_FORBIDDEN
    if prev in EN_CONJUNCTIONS or prev in EN_PREPOSITIONS or _is_number(prev):
        return P_DANGLING
    if prev in EN_AUXILIARIES or prev in EN_SUBJECT_PRONOUNS:
        return P_ADNOMINAL  # "may be / considered", "we / walked"
    if nxt in EN_CONJUNCTIONS:
        return P_CONJUNCTION
    if nxt in EN_PREPOSITIONS:
        return P_PREPOSITION
    if _is_name_part(before) and _is_name_part(after):
        return P_NAME
    return P_DEFAULT


def ends_sentence(word: str, language: str) -> bool:
    """Whether a sentence ends after ``word`` (punctuation, or a Korean final ending)."""
    tail = word.rstrip("\"'”’)]」』")
    if tail[-1:] in SENTENCE_END:
        return True
    return language == "ko" and len(tail) > 1 and tail.endswith(KO_FINAL_ENDINGS)


def _jongseong(syllable: str) -> int:
    """The final consonant index of a Hangul syllable (0 = none, 4 = ㄴ, 8 = ㄹ); -1 when
    not a syllable."""
    code = ord(syllable) - 0xAC00
    return code % 28 if 0 <= code < 11172 else -1


def _is_adnominal(word: str) -> bool:
    """A word that modifies the next one: a verb or adjective form ending in ㄴ/ㄹ or 던
    (화려한 옷, 지켜오던 가훈, 만날 상상) but not a topic/object particle (은 는 을 를),
    or a genitive (어머니의 품)."""
    if word.endswith(("같은", "의")):  # 철석 같은 가훈, 어머니의 품
        return True
    if word in KO_SHORT_MODIFIERS:  # 흰 바탕, 새 옷: one syllable, still a modifier
        return True
    if len(word) < 2 or word[-1] in "은는을를인일":
        return False
    return word.endswith("던") or _jongseong(word[-1]) in (4, 8)


def _eo_form(word: str) -> bool:
    """A verb's -아/-어 form (먹어, 도와, 해, 열어): the last syllable ends in the vowel
    ㅏ ㅓ ㅕ ㅐ ㅘ ㅝ with no final consonant (a noun such as 사과 looks the same, so this
    only counts before an auxiliary)."""
    if word.endswith("도와"):  # 도와 주다: 와 here is the verb's, not the particle
        return True
    if len(word) < 1 or _jongseong(word[-1]) != 0 or word.endswith(KO_NOT_EO):
        return False
    vowel = (ord(word[-1]) - 0xAC00) // 28 % 21
    return vowel in (0, 1, 4, 6, 9, 14)  # ㅏ ㅐ ㅓ ㅕ ㅘ ㅝ


def _korean_penalty(before: str, after: str) -> float:
    """Korean break between two eojeol."""
    prev, nxt = before.strip(), _bare(after)
    if prev in KO_NO_BREAK_AFTER or nxt in KO_NO_BREAK_BEFORE:
        return P_FORBIDDEN
    if (
        nxt.startswith(KO_AUXILIARY_STARTS)
        or (prev.endswith("고") and nxt.startswith(KO_AFTER_GO))
        or (_eo_form(prev) and nxt.startswith(KO_AFTER_EO))
    ):
        return P_NAME  # a verb and its auxiliary
    if nxt.startswith(KO_LEANING_STARTS):
        return P_NAME
    if nxt in KO_CONJUNCTIONS:
        return P_CONJUNCTION
    if len(prev) > 1 and prev.endswith(KO_FINAL_ENDINGS):
        return P_CLAUSE
    if len(prev) > 1 and prev.endswith(KO_CONNECTIVE_ENDINGS):
        return P_CONJUNCTION
    if prev in KO_NUMERALS or re.fullmatch(r"\d[\d,.]*", prev):
        return P_DANGLING  # a number and its counter: 다섯 / 개의, 3 / 명이
    if _is_adnominal(prev):
        # Korean guides allow no break after a modifier (잔인한 / 마음이): dearer than
        # English's "may be / considered", so that line balance does not outweigh it
        return P_DANGLING
    return P_DEFAULT


def join_units(units: Sequence[Unit]) -> str:
    """The text of units on one line: spaces only where the units had them."""
    out = ""
    for i, unit in enumerate(units):
        out += (" " if i and unit.space_before else "") + unit.text
    return out


def _widths(units: Sequence[Unit], limits: Limits) -> tuple[list[float], float]:
    return [limits.width(u.text) for u in units], limits.width(" ")


def line_count_needed(units: Sequence[Unit], limits: Limits) -> int:
    """Lines a greedy fill needs (the minimum possible); a unit wider than a line counts
    as a line of its own."""
    widths, space = _widths(units, limits)
    lines, current = 0, -1.0
    for unit, w in zip(units, widths, strict=True):
        extra = w + (space if current > 0 and unit.space_before else 0.0)
        if current >= 0 and current + extra <= limits.max_line_width + 1e-9:
            current += extra
        else:
            lines += 1
            current = w
    return lines


def fits(units: Sequence[Unit], limits: Limits) -> bool:
    """Whether the units fit within the line width and line count."""
    if not units:
        return True
    widths, _ = _widths(units, limits)
    if max(widths) > limits.max_line_width + 1e-9:
        return False
    return line_count_needed(units, limits) <= limits.max_line_count


def wrap(units: Sequence[Unit], limits: Limits) -> list[list[int]]:
    """Lines of a cue, as lists of unit indices: one line when the text fits on one;
    otherwise the fewest lines that fit, balanced, broken at the best points."""
    return wrap_with_cost(units, limits)[0]


def wrap_with_cost(units: Sequence[Unit], limits: Limits) -> tuple[list[list[int]], float]:
    """:func:`wrap`, and the penalty of its line breaks (0 for one line)."""
    n = len(units)
    if n == 0:
        return [], 0.0
    widths, space = _widths(units, limits)
    # prefix[j]: width of units[:j] on one line, so a line i..j-1 is prefix[j] - prefix[i] - gap
    prefix = [0.0]
    for k, (unit, w) in enumerate(zip(units, widths, strict=True)):
        prefix.append(prefix[-1] + w + (space if k and unit.space_before else 0.0))
    if prefix[n] <= limits.max_line_width + 1e-9 or n == 1:
        return [list(range(n))], 0.0
    need = max(2, line_count_needed(units, limits))
    found = _best_partition(units, prefix, space, need, limits)
    if found is None:  # cannot fit (a unit wider than a line): greedy lines
        return _greedy(units, widths, space, limits), P_FORBIDDEN
    return found


def _best_partition(
    units: Sequence[Unit], prefix: list[float], space: float, k: int, limits: Limits
) -> tuple[list[list[int]], float] | None:
    """Split into exactly ``k`` lines, each within the width, minimising break penalties
    plus the squared slack of each line (which balances the lines)."""
    n, cap = len(units), limits.max_line_width
    lang = limits.rules.style
    inf = float("inf")
    penalties = [
        break_penalty(units[j - 1].text, units[j].text, lang) for j in range(1, n)
    ]  # penalties[j - 1]: break before units[j]
    # best[m][j]: cost of putting units[:j] on m lines
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[-1] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for m in range(1, k + 1):
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                gap = space if i and units[i].space_before else 0.0
                w = prefix[j] - prefix[i] - gap
                if w > cap + 1e-9:
                    break
                if best[m - 1][i] == inf:
                    continue
                cost = best[m - 1][i] + 20.0 * ((cap - w) / cap) ** 2
                if j < n:
                    cost += penalties[j - 1]
                if cost < best[m][j]:
                    best[m][j], back[m][j] = cost, i
    if best[k][n] == inf:
        return None
    lines: list[list[int]] = []
    breaks = 0.0
    j = n
    for m in range(k, 0, -1):
        i = back[m][j]
        lines.append(list(range(i, j)))
        if i > 0:
            breaks += penalties[i - 1]
        j = i
    return lines[::-1], breaks


def _greedy(
    units: Sequence[Unit], widths: list[float], space: float, limits: Limits
) -> list[list[int]]:
    lines: list[list[int]] = []
    current = -1.0
    for idx, (unit, w) in enumerate(zip(units, widths, strict=True)):
        extra = w + (space if unit.space_before else 0.0)
        if lines and current + extra <= limits.max_line_width + 1e-9:
            lines[-1].append(idx)
            current += extra
        else:
            lines.append([idx])
            current = w
    return lines
