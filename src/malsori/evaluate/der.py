"""Diarization error rate (DER) and its parts, scored as NIST md-eval does: reference turn
boundaries get a no-score collar of ``collar`` seconds on each side, overlapped speech is
scored, and hypothesis speakers map one-to-one onto reference speakers so that the matched
speech is largest (the Hungarian algorithm). Time is sampled in 10 ms frames.

A short implementation of our own: pyannote.metrics would pull pandas, scipy, scikit-learn,
sympy and matplotlib for a computation of sixty lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..diarize.turns import Turn

RESOLUTION = 0.01  # seconds per scoring frame


@dataclass(frozen=True)
class DERResult:
    """Seconds of scored reference speech and of each error; rates are fractions of it."""

    total: float
    missed: float
    false_alarm: float
    confusion: float
    ref_speakers: int
    hyp_speakers: int

    @property
    def der(self) -> float:
        errors = self.missed + self.false_alarm + self.confusion
        return errors / self.total if self.total > 0 else (0.0 if errors == 0 else 1.0)

    def rate(self, part: float) -> float:
        return part / self.total if self.total > 0 else 0.0


def _grid(turns: Sequence[Turn], n: int) -> tuple[list[str], npt.NDArray[np.bool_]]:
    speakers = sorted({t.speaker for t in turns})
    grid = np.zeros((n, len(speakers)), dtype=bool)
    index = {s: i for i, s in enumerate(speakers)}
    for t in turns:
        a, b = round(t.start / RESOLUTION), round(t.end / RESOLUTION)
        grid[max(0, a) : min(n, b), index[t.speaker]] = True
    return speakers, grid


def hungarian(gain: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Row-column pairs of a one-to-one assignment with the largest total ``gain``
    (rectangular allowed; the shorter side is matched fully)."""
    rows, cols = gain.shape
    if rows == 0 or cols == 0:
        return []
    transposed = rows > cols
    cost = -(gain.T if transposed else gain)
    n, m = cost.shape  # n <= m
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row matched to column j (1-based; 0 = none)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = np.inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return [(c, r) for r, c in pairs] if transposed else pairs


def diarization_error(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], *, collar: float = 0.25,
    duration: float | None = None,
) -> DERResult:
    """Score ``hypothesis`` against ``reference`` (see the module docstring)."""
    end = max([t.end for t in [*reference, *hypothesis]] + [duration or 0.0])
    n = int(np.ceil(end / RESOLUTION)) + 1
    ref_names, ref = _grid(reference, n)
    hyp_names, hyp = _grid(hypothesis, n)
    scored = np.ones(n, dtype=bool)
    c = round(collar / RESOLUTION)
    if c > 0:
        for t in reference:
            for edge in (t.start, t.end):
                e = round(edge / RESOLUTION)
                scored[max(0, e - c) : e + c] = False
    ref, hyp = ref[scored], hyp[scored]
    n_ref = ref.sum(axis=1)
    n_hyp = hyp.sum(axis=1)
    overlap = ref.T.astype(np.float64) @ hyp.astype(np.float64)  # (ref, hyp) frames together
    correct = 0.0
    for r, h in hungarian(overlap):
        correct += overlap[r, h]
    missed = float(np.maximum(n_ref - n_hyp, 0).sum())
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = float(np.minimum(n_ref, n_hyp).sum() - correct)
    return DERResult(
        total=float(n_ref.sum()) * RESOLUTION,
        missed=missed * RESOLUTION,
        false_alarm=false_alarm * RESOLUTION,
        confusion=confusion * RESOLUTION,
        ref_speakers=len(ref_names),
        hyp_speakers=len(hyp_names),
    )


__all__ = ["DERResult", "diarization_error", "hungarian"]
