"""Independent model calls run side by side on the model's workers.

A CTranslate2 model loaded with ``inter_threads=N`` (faster-whisper's ``num_workers``)
serves N calls at once, every worker with its own ``intra_threads`` and the same weights
(no extra copy). On a 2-core CPU two ``generate`` calls of 3 windows each, side by side,
finish in ~60% of the time of one call of 6: a decoder step is too small to keep two
threads busy (docs/pipeline.md, "6. Decoder"). The decoder and the word aligner use this;
the encoder, which keeps both threads busy, runs one call at a time. Memory stays what
the stage allows: the calls in flight together never hold more windows or hypotheses
than the stage's one call did.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def workers_of(whisper: Any) -> int:
    """Calls the CTranslate2 model can serve at once (its ``num_workers``; 1 if unknown)."""
    try:
        return max(1, int(whisper.num_workers))
    except (AttributeError, TypeError, ValueError):
        return 1


def split(items: Sequence[T], per_call: int, workers: int) -> list[list[T]]:
    """Input: items (windows) and the most items one call may hold when it runs alone.
    Output: consecutive, balanced chunks; with ``workers`` > 1 each chunk holds at most
    ``per_call / workers`` items (rounded up), so the chunks in flight together hold about
    what one call would, and there are at least ``workers`` chunks when there are as many
    items."""
    n = len(items)
    if n == 0:
        return []
    size = max(1, math.ceil(per_call / max(1, workers)))
    calls = max(math.ceil(n / size), min(n, workers))
    bounds = [round(i * n / calls) for i in range(calls + 1)]
    return [list(items[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def map_calls(fn: Callable[[T], R], jobs: Sequence[T], workers: int) -> list[R]:
    """``[fn(job) for job in jobs]``, up to ``workers`` at a time, results in job order.
    An exception of any call (``TranscriptionCancelled`` included) is raised here after the
    calls already running have finished; the calls still waiting are cancelled."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
