"""Evaluation reports: Markdown (side-by-side table, per-utterance rows with errors marked),
JSON, CSV, and a speed vs WER plot. Written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_many, atomic_write_text
from .._tables import csv_text, figure_png, new_figure
from ..manifest import ManifestProblem
from .metrics import headline
from .sweep import ConfigResult, Utterance


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def summary_rows(results: list[ConfigResult]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        for lang in res.languages():
            t = res.totals(lang)
            rows.append(
                {"config": res.config.label, "language": lang, "headline": headline(lang), **t}
            )
    return rows


def render_markdown(
    results: list[ConfigResult], problems: list[ManifestProblem], manifest: str
) -> str:
    out = [f"# Evaluation of `{manifest}`", ""]
    out += [
        "| configuration | language | utterances | WER | raw WER | CER | spacing | S/I/D | RTF "
        "| x-realtime |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary_rows(results):
        lead = "cer" if r["headline"] == "cer" else "wer"
        wer = f"**{_pct(r['wer'])}**" if lead == "wer" else _pct(r["wer"])
        cer = f"**{_pct(r['cer'])}**" if lead == "cer" else _pct(r["cer"])
        xrt = f"{1 / r['rtf']:.1f}x" if r["rtf"] > 0 else "-"
        spacing = _pct(r["spacing"]) if lead == "cer" else "-"
        out.append(
            f"| {r['config']} | {r['language']} | {r['utterances']} | {wer} | "
            f"{_pct(r['raw_wer'])} | {cer} | {spacing} | {r['substitutions']}/{r['insertions']}/"
            f"{r['deletions']} | {r['rtf']:.3f} | {xrt} |"
        )
    out += [
        "",
        "Bold: the headline metric for the language (CER for Korean, Japanese, Chinese, on "
        "the text without spaces); spacing: edits that only move word boundaries, per "
        "reference character (CER with spaces = CER + spacing).",
        "WER after Whisper's normalizer (English normalizer for English); raw WER on the "
        "text as written.",
        "",
    ]
    all_problems = list(problems) + [p for res in results for p in res.skipped]
    if all_problems:
        out += ["## Rows not scored", ""]
        out += [f"- {p}" for p in problems]
        for res in results:
            out += [f"- {res.config.label}: {p}" for p in res.skipped]
        out.append("")
    for res in results:
        out += [
            f"## {res.config.label}: per utterance",
            "",
            "| line | file | lang | WER | CER | reference with errors marked | hypothesis |",
            "|---|---|---|---|---|---|---|",
        ]
        for u in res.utterances:
            cell = u.score.diff.replace("|", "\\|")
            hyp = u.hypothesis.replace("|", "\\|")
            out.append(
                f"| {u.row.line} | {u.row.path.name} | {u.row.language} | "
                f"{_pct(u.score.wer)} | {_pct(u.score.cer)} | {cell} | {hyp} |"
            )
        out.append("")
    out.append("Marks: `[ref→hyp]` substitution, `[+word]` insertion, `[-word]` deletion.")
    return "\n".join(out) + "\n"


def to_json(results: list[ConfigResult], problems: list[ManifestProblem]) -> dict[str, Any]:
    return {
        "summary": summary_rows(results),
        "problems": [{"line": p.line, "message": p.message} for p in problems],
        "configs": [
            {
                "config": vars(res.config) | {"label": res.config.label},
                "load_time_s": res.load_time,
                "totals": res.totals(),
                "skipped": [{"line": p.line, "message": p.message} for p in res.skipped],
                "utterances": [
                    {
                        "line": u.row.line,
                        "path": str(u.row.path),
                        "language": u.row.language,
                        "reference": u.row.reference,
                        "hypothesis": u.hypothesis,
                        "wer": u.score.wer,
                        "raw_wer": u.score.raw_wer,
                        "cer": u.score.cer,
                        "substitutions": u.score.substitutions,
                        "insertions": u.score.insertions,
                        "deletions": u.score.deletions,
                        "diff": u.score.diff,
                        "duration_s": u.duration,
                        "processing_s": u.processing_time,
                    }
                    for u in res.utterances
                ],
            }
            for res in results
        ],
    }


CSV_COLUMNS = (
    "config",
    "line",
    "path",
    "language",
    "wer",
    "raw_wer",
    "cer",
    "substitutions",
    "insertions",
    "deletions",
    "duration_s",
    "processing_s",
    "reference",
    "hypothesis",
)


def _csv_row(label: str, u: Utterance) -> list[Any]:
    """One utterance as a CSV row (the columns of ``CSV_COLUMNS``)."""
    s = u.score
    return [
        label,
        u.row.line,
        str(u.row.path),
        u.row.language,
        f"{s.wer:.4f}",
        f"{s.raw_wer:.4f}",
        f"{s.cer:.4f}",
        s.substitutions,
        s.insertions,
        s.deletions,
        f"{u.duration:.3f}",
        f"{u.processing_time:.3f}",
        u.row.reference,
        u.hypothesis,
    ]


def render_csv(results: list[ConfigResult]) -> str:
    """Every scored utterance of every configuration, one row each."""
    rows = (_csv_row(res.config.label, u) for res in results for u in res.utterances)
    return csv_text(CSV_COLUMNS, rows)


def render_report(
    path: str | Path, results: list[ConfigResult], problems: list[ManifestProblem], manifest: str
) -> str:
    """The report in the format ``path``'s suffix names (.json, .csv, else Markdown)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return json.dumps(to_json(results, problems), ensure_ascii=False, indent=2)
    if suffix == ".csv":
        return render_csv(results)
    return render_markdown(results, problems, manifest)


def write_report(
    path: str | Path, results: list[ConfigResult], problems: list[ManifestProblem], manifest: str
) -> None:
    atomic_write_text(path, render_report(path, results, problems, manifest))


def plot_speed_vs_error(results: list[ConfigResult], path: str | Path) -> None:
    """Write :func:`speed_vs_error_png` to ``path`` (atomically)."""
    atomic_write_many([(Path(path), speed_vs_error_png(results))])


def speed_vs_error_png(results: list[ConfigResult]) -> bytes:
    """One point per configuration and language: x = x-realtime, y = the headline rate."""
    fig, ax = new_figure(7, 4.5)
    for r in summary_rows(results):
        if r["rtf"] <= 0:
            continue
        rate = r[r["headline"]] * 100
        marker = "o" if r["headline"] == "wer" else "s"
        ax.scatter(1 / r["rtf"], rate, marker=marker)
        ax.annotate(
            f"{r['config']} ({r['language']}, {r['headline'].upper()})",
            (1 / r["rtf"], rate),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xlabel("speed (x realtime, higher is faster)")
    ax.set_ylabel("error rate % (WER, or CER for ko/ja/zh)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    return figure_png(fig)
