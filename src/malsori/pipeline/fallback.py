"""Stage 6: quality checks and the fallback ladder.

Sequential Whisper's rules with faster-whisper's thresholds: a window whose text
compresses too well (gzip ratio > 2.4: a loop) or whose average log-probability is below
-1.0 is decoded again with the next strategy, unless the no-speech probability is above
0.6 with that low log-probability (then the window is silence and gives no text). The
ladder is: the language's strategy (greedy, or beam 5), beam 5 at temperature 0, then
sampling at 0.2 ... 1.0 (best of 5). Only the failing windows go down the ladder, still
batched together. When every rung fails, the best attempt below the compression threshold
(else the best of all) is kept and flagged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .decode import Attempt, DecodeSetup, Strategy, generate
from .encode import Encoded, stack
from .parallel import map_calls, split, workers_of


@dataclass(frozen=True)
class Thresholds:
    """faster-whisper's defaults (``compression_ratio_threshold``, ``log_prob_threshold``,
    ``no_speech_threshold``)."""

    compression_ratio: float = 2.4
    log_prob: float = -1.0
    no_speech: float = 0.6


def is_silence(a: Attempt, th: Thresholds) -> bool:
    """Whisper's no-speech rule: likely no speech and no confident text."""
    return a.no_speech_prob > th.no_speech and a.avg_logprob < th.log_prob


def failed(a: Attempt, th: Thresholds) -> bool:
    """True when the attempt must be decoded again with the next strategy."""
    if is_silence(a, th):
        return False
    return a.compression_ratio > th.compression_ratio or a.avg_logprob < th.log_prob


def flags(a: Attempt, th: Thresholds) -> list[str]:
    """Quality flags kept on the segments of a final attempt."""
    out = []
    if a.compression_ratio > th.compression_ratio:
        out.append("repetition")
    if a.avg_logprob < th.log_prob:
        out.append("low_confidence")
    if a.strategy.temperature > 0:  # greedy and beam failed the checks: may vary per run
        out.append("sampled")
    return out


def ladder(beam_size: int, temperatures: Sequence[float], best_of: int) -> list[Strategy]:
    """Input: the first strategy's beam size and the temperatures. Output: the strategies
    tried in order (duplicates removed)."""
    rungs = []
    if not temperatures or temperatures[0] <= 0:  # a first temperature > 0: sampling only
        rungs.append(Strategy(beam_size=beam_size))
        if beam_size < 5:
            rungs.append(Strategy(beam_size=5))
    rungs += [Strategy(temperature=t, best_of=best_of) for t in temperatures if t > 0]
    return rungs


def decode_with_fallback(
    setup: DecodeSetup,
    tokenizer: Any,
    encoded: list[Encoded],
    rungs: list[Strategy],
    th: Thresholds,
    max_windows: int = 6,
    max_hypotheses: int = 10,
) -> list[Attempt]:
    """Input: encoder outputs of windows in one language, the ladder, the thresholds and
    the most windows and hypotheses (windows x beam or samples) per ``generate`` call (each holds a
    36 MB cross-attention cache with base); a model with several workers gets as many
    smaller calls at once, holding together no more than one such call.
    Output: the attempt kept for each window.

    The rungs after the first decode without the initial prompt and hotwords: a prompt is a
    hint, and a prompt that repeats itself ("word word word ...", 300 times) made every
    window repeat it at every temperature (compression ratio far over the limit), 30x slower
    than without it."""
    workers = workers_of(setup.whisper)
    bare = dataclasses.replace(setup, initial_prompt=None, hotwords=None)
    tries: list[list[Attempt]] = [[] for _ in encoded]
    todo = list(range(len(encoded)))
    final: list[Attempt | None] = [None] * len(encoded)
    for rung, strategy in enumerate(rungs):
        if not todo:
            break
        hyps = max(strategy.beam_size, strategy.best_of, 1)
        per_call = min(max_windows, max(1, max_hypotheses // hyps))
        call = partial(_generate_part, bare if rung else setup, tokenizer, encoded, strategy)
        parts = map_calls(call, split(todo, per_call, workers), workers)
        attempts = [a for got in parts for a in got]
        still = []
        for i, a in zip(todo, attempts, strict=True):
            tries[i].append(a)
            if failed(a, th):
                still.append(i)
            else:
                final[i] = a
        todo = still
    for i in todo:
        below = [a for a in tries[i] if a.compression_ratio <= th.compression_ratio]
        final[i] = max(below or tries[i], key=lambda a: a.avg_logprob)
    return [a for a in final if a is not None]


def _generate_part(
    setup: DecodeSetup,
    tokenizer: Any,
    encoded: list[Encoded],
    strategy: Strategy,
    part: list[int],
) -> list[Attempt]:
    """One ``generate`` call on the windows ``part`` (indices into ``encoded``)."""
    return generate(setup, tokenizer, stack([encoded[i] for i in part]), strategy)


def mean_logprob(attempts: list[Attempt]) -> float:
    """Average log-probability of a list of attempts (diagnostics)."""
    return float(np.mean([a.avg_logprob for a in attempts])) if attempts else 0.0
