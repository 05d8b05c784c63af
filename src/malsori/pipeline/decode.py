"""Stage 5b: the decoder, batched across windows (``Whisper.generate``).

Every window of a batch that shares a language and a decoding strategy goes into one
``generate`` call: the decoder is bound by reading its weights once per step, so 8-16
windows cost little more per step than one. Timestamps are on, so each window splits into
Whisper's own sentence-like segments and an unfinished window can be decoded again from
its last timestamp.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Strategy:
    """One rung of the fallback ladder: beam search at temperature 0, or sampling."""

    beam_size: int = 1
    temperature: float = 0.0
    best_of: int = 1

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature > 0:
            return {
                "beam_size": 1,
                "num_hypotheses": self.best_of,
                "sampling_topk": 0,
                "sampling_temperature": self.temperature,
            }
        return {"beam_size": self.beam_size}


@dataclass(frozen=True)
class Attempt:
    """The decoder's answer for one window with one strategy."""

    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    strategy: Strategy


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text`` (Whisper's repetition measure; > 2.4 = a loop)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class DecodeSetup:
    """What every ``generate`` call of one transcription shares."""

    whisper: Any  # ctranslate2.models.Whisper
    max_length: int
    initial_prompt: str | None
    hotwords: str | None
    timestamps: bool = True
    max_initial_timestamp_index: int = 50


def build_prompt(setup: DecodeSetup, tokenizer: Any) -> list[int]:
    """Input: the tokenizer of one language/task. Output: the prompt token ids
    (``<|startofprev|>`` + initial prompt/hotwords, then ``<|startoftranscript|><|lang|>
    <|task|>``; timestamps on)."""
    prompt: list[int] = []
    previous = tokenizer.encode(" " + setup.initial_prompt.strip()) if setup.initial_prompt else []
    if previous or setup.hotwords:
        prompt.append(tokenizer.sot_prev)
        if setup.hotwords:
            prompt.extend(
                tokenizer.encode(" " + setup.hotwords.strip())[: setup.max_length // 2 - 1]
            )
        prompt.extend(previous[-(setup.max_length // 2 - 1) :])
    prompt.extend(tokenizer.sot_sequence)
    if not setup.timestamps:
        prompt.append(tokenizer.no_timestamps)
    return prompt


def suppressed_tokens(tokenizer: Any) -> list[int]:
    """Whisper's default suppression (non-speech symbols and the special tokens)."""
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(tokenizer, [-1]))


def generate(
    setup: DecodeSetup,
    tokenizer: Any,
    encoded_batch: Any,
    strategy: Strategy,
) -> list[Attempt]:
    """Input: a ``StorageView`` of encoder outputs (all windows of one language) and a
    strategy. Output: one :class:`Attempt` per window (the best of ``best_of`` samples when
    sampling), with avg log-probability, no-speech probability and compression ratio."""
    prompt = build_prompt(setup, tokenizer)
    n = int(encoded_batch.shape[0])
    results = setup.whisper.generate(
        encoded_batch,
        [prompt] * n,
        length_penalty=1.0,
        max_length=setup.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=suppressed_tokens(tokenizer),
        max_initial_timestamp_index=setup.max_initial_timestamp_index,
        **strategy.generate_kwargs(),
    )
    attempts = []
    for res in results:
        best = max(range(len(res.sequences_ids)), key=lambda k: float(res.scores[k]))
        tokens = [int(t) for t in res.sequences_ids[best]]
        # the score is the length-normalised log-probability; Whisper's avg counts the EOT
        avg_logprob = float(res.scores[best]) * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        attempts.append(
            Attempt(
                tokens,
                text,
                avg_logprob,
                float(res.no_speech_prob),
                compression_ratio(text),
                strategy,
            )
        )
    return attempts
