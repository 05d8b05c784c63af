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
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._tables import csv_text
from ..diarize.turns import Turn, parse_rttm
from ..errors import ManifestError
from ..manifest import ManifestProblem

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
    reference: Sequence[Turn],
    hypothesis: Sequence[Turn],
    *,
    collar: float = 0.25,
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


# --- a diarization manifest ---------------------------------------------------------------


@dataclass(frozen=True)
class DiarizationRow:
    """One line of a diarization manifest (TSV with a header: ``path``, ``rttm``, and
    optionally ``language`` and ``speakers``; paths relative to the manifest)."""

    line: int
    path: Path
    rttm: Path
    language: str = ""


@dataclass(frozen=True)
class FileScore:
    row: DiarizationRow
    result: DERResult
    seconds: float  # diarization time
    duration: float  # audio seconds

    @property
    def rtf(self) -> float:
        return self.seconds / self.duration if self.duration else 0.0


def read_diarization_manifest(
    path: str | Path,
) -> tuple[list[DiarizationRow], list[ManifestProblem]]:
    """The usable rows of ``path`` and one problem per row that is not (a missing file, a
    directory); raises :class:`ManifestError` when the manifest itself cannot be used."""
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{manifest}: cannot read the manifest ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{manifest}: the manifest is not UTF-8 text") from None
    lines = text.splitlines()
    if not lines:
        raise ManifestError(f"{manifest}: empty manifest")
    header = lines[0].split("\t")
    if "path" not in header or "rttm" not in header:
        raise ManifestError(f"{manifest}:1: the header needs 'path' and 'rttm' columns")
    rows: list[DiarizationRow] = []
    problems: list[ManifestProblem] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        cells = dict(zip(header, line.split("\t"), strict=False))
        paths = {col: cells.get(col, "").strip() for col in ("path", "rttm")}
        bad = [f"empty {col} column" for col, value in paths.items() if not value]
        audio = manifest.parent / paths["path"]
        rttm = manifest.parent / paths["rttm"]
        if not bad:
            for p in (audio, rttm):
                if p.is_dir():
                    bad.append(f"{p.name} is a directory, not a file")
                elif not p.is_file():
                    bad.append(f"no such file: {p.name}")
        if bad:
            problems.append(ManifestProblem(number, "; ".join(bad)))
            continue
        rows.append(DiarizationRow(number, audio, rttm, cells.get("language", "")))
    if not rows and not problems:
        raise ManifestError(f"{manifest}: no rows")
    return rows, problems


def reference_turns(row: DiarizationRow) -> list[Turn]:
    """The reference turns of ``row`` (all file ids of its RTTM together); raises
    :class:`ManifestError` (naming the RTTM file and line) for one that cannot be read."""
    try:
        text = row.rttm.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{row.rttm.name}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{row.rttm.name}: not UTF-8 text") from None
    parsed = parse_rttm(text, source=str(row.rttm.name))
    return [t for turns in parsed.values() for t in turns]


def render_der_markdown(
    scores: Sequence[FileScore], collar: float, problems: Sequence[ManifestProblem] = ()
) -> str:
    """A Markdown table: each file, then the mean DER and the speaker-count accuracy, then
    the rows that could not be scored."""
    out = [
        f"Diarization error rate (collar {collar:g} s each side of reference boundaries, "
        "overlapped speech scored)",
        "",
        "| file | language | DER | missed | false alarm | confusion | speakers found/true | RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        r = s.result
        out.append(
            f"| {s.row.path.name} | {s.row.language} | {r.der:.1%} | {r.rate(r.missed):.1%} "
            f"| {r.rate(r.false_alarm):.1%} | {r.rate(r.confusion):.1%} "
            f"| {r.hyp_speakers}/{r.ref_speakers} | {s.rtf:.3f} |"
        )
    if scores:
        mean = sum(s.result.der for s in scores) / len(scores)
        right = sum(s.result.hyp_speakers == s.result.ref_speakers for s in scores)
        audio = sum(s.duration for s in scores)
        rtf = sum(s.seconds for s in scores) / audio if audio else 0.0
        out += [
            "",
            f"Mean DER {mean:.1%}; speaker count right on {right} of {len(scores)}; RTF {rtf:.3f}",
        ]
    if problems:
        out += ["", "Rows not scored:", ""] + [f"- {p}" for p in problems]
    return "\n".join(out) + "\n"


DER_CSV_COLUMNS = (
    "line",
    "path",
    "language",
    "der",
    "missed",
    "false_alarm",
    "confusion",
    "speakers_found",
    "speakers_true",
    "rtf",
)


def render_der_csv(scores: Sequence[FileScore]) -> str:
    """One CSV row per scored file (rates as fractions)."""
    rows = (
        (
            s.row.line,
            s.row.path.name,
            s.row.language,
            f"{s.result.der:.6f}",
            f"{s.result.rate(s.result.missed):.6f}",
            f"{s.result.rate(s.result.false_alarm):.6f}",
            f"{s.result.rate(s.result.confusion):.6f}",
            s.result.hyp_speakers,
            s.result.ref_speakers,
            f"{s.rtf:.4f}",
        )
        for s in scores
    )
    return csv_text(DER_CSV_COLUMNS, rows)


def scores_to_json(
    scores: Sequence[FileScore], collar: float, problems: Sequence[ManifestProblem] = ()
) -> dict[str, object]:
    return {
        "collar": collar,
        "problems": [{"line": p.line, "message": p.message} for p in problems],
        "files": [
            {
                "path": s.row.path.name,
                "language": s.row.language,
                "der": s.result.der,
                "missed": s.result.rate(s.result.missed),
                "false_alarm": s.result.rate(s.result.false_alarm),
                "confusion": s.result.rate(s.result.confusion),
                "speakers_found": s.result.hyp_speakers,
                "speakers_true": s.result.ref_speakers,
                "rtf": s.rtf,
            }
            for s in scores
        ],
        "mean_der": sum(s.result.der for s in scores) / len(scores) if scores else None,
        "speaker_count_right": sum(s.result.hyp_speakers == s.result.ref_speakers for s in scores),
    }


__all__ = [
    "DERResult",
    "DiarizationRow",
    "FileScore",
    "diarization_error",
    "hungarian",
    "read_diarization_manifest",
    "reference_turns",
    "render_der_csv",
    "render_der_markdown",
    "scores_to_json",
]
