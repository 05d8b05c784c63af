"""LocalAgreement-2 (ufal/whisper_streaming): a word is final once two consecutive
hypotheses of the growing buffer agree on it, as the longest common prefix after the last
confirmed word. Plus the guards the streaming projects learnt the hard way: a repetition
loop is cut before it can be confirmed by agreement (WhisperLiveKit #338)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HypothesisBuffer", "TimedWord", "cut_repetition", "normalized"]

_NOT_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class TimedWord:
    """A word with its times in session seconds; ``text`` keeps Whisper's leading space."""

    start: float
    end: float
    text: str
    probability: float = 1.0


def normalized(text: str) -> str:
    """What two hypotheses must agree on: case and punctuation do not count ("Hello," and
    "hello" agree; the later spelling is kept)."""
    return _NOT_WORD.sub("", text.lower())


def cut_repetition(
    words: list[TimedWord], max_repeats: int = 3, max_ngram: int = 4
) -> list[TimedWord]:
    """``words`` up to the first n-gram (n <= ``max_ngram``) repeated ``max_repeats`` times in
    a row; the first occurrence is kept. A decoder caught in a loop ("the the the the ...")
    otherwise produces the same loop twice, and agreement would confirm it."""
    keys = [normalized(w.text) for w in words]
    for i in range(len(keys)):
        for n in range(1, max_ngram + 1):
            reps = max_repeats + (1 if n == 1 else 0)  # "very very very" can be real speech
            if i + n * reps > len(keys):
                break
            gram = keys[i : i + n]
            if not any(gram):
                continue
            if all(keys[i + k * n : i + (k + 1) * n] == gram for k in range(1, reps)):
                return words[: i + n]
    return words


class HypothesisBuffer:
    """The unconfirmed tail of the last hypothesis, and the words confirmed while their
    audio is still in the buffer (used to drop them when the decoder repeats them)."""

    def __init__(self, start: float = 0.0) -> None:
        self.committed_in_buffer: list[TimedWord] = []
        self.buffer: list[TimedWord] = []  # the previous hypothesis, past the confirmed words
        self.new: list[TimedWord] = []
        self.last_committed_time = start

    def insert(self, words: list[TimedWord]) -> None:
        """Take a new hypothesis (session times); words that end before the last confirmed
        one, and a repeat of the confirmed tail (up to 5 words), are dropped."""
        new = [w for w in words if w.start > self.last_committed_time - 0.1]
        if new and abs(new[0].start - self.last_committed_time) < 1 and self.committed_in_buffer:
            cn, nn = len(self.committed_in_buffer), len(new)
            for i in range(1, min(cn, nn, 5) + 1):
                tail = [normalized(w.text) for w in self.committed_in_buffer[-i:]]
                head = [normalized(w.text) for w in new[:i]]
                if tail == head:
                    new = new[i:]
                    break
        self.new = new

    def flush(self) -> list[TimedWord]:
        """Confirm the longest common prefix of the new and the previous hypothesis."""
        commit: list[TimedWord] = []
        while self.new and self.buffer:
            if normalized(self.new[0].text) != normalized(self.buffer[0].text):
                break
            word = self.new.pop(0)
            self.buffer.pop(0)
            commit.append(word)
            self.last_committed_time = word.end
        self.buffer, self.new = self.new, []
        self.committed_in_buffer.extend(commit)
        return commit

    def force(self, until: float | None = None) -> list[TimedWord]:
        """Confirm the pending words (those that end by ``until``; all when None): the
        utterance ended, or the buffer must be cut."""
        take = [w for w in self.buffer if until is None or w.end <= until]
        self.buffer = self.buffer[len(take) :] if until is not None else []
        if take:
            self.last_committed_time = take[-1].end
        self.committed_in_buffer.extend(take)
        return take

    def pop_committed(self, time: float) -> None:
        """Forget confirmed words whose audio was cut from the buffer."""
        while self.committed_in_buffer and self.committed_in_buffer[0].end <= time:
            self.committed_in_buffer.pop(0)

    def reset(self, start: float) -> None:
        self.committed_in_buffer, self.buffer, self.new = [], [], []
        self.last_committed_time = start

    @property
    def pending(self) -> list[TimedWord]:
        return list(self.buffer)
