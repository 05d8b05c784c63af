"""Mixed languages in one file: each stretch transcribed inside the file vs alone.

Issue 14 asks that a file switching between English and Korean, with no language given,
gives each stretch in its own language, with a WER/CER within 2 points of transcribing
that stretch alone. One 30 s stretch is a noisy measure (one proper noun written in Latin
letters is 6 CER points), so this script builds two files from every short clip of the
evaluation set, ~7 minutes each, with six changes of language each:

- ``en-first``: EN KO EN KO EN KO EN (the 29 English clips in 4 stretches, the 17 Korean
  clips in 3);
- ``ko-first``: KO EN KO EN KO EN KO (the same clips, other groups and boundaries).

Every stretch is also transcribed alone, with no language given. A segment belongs to the
stretch that holds its midpoint. A stretch more than 2 points worse inside the file than
alone is also transcribed alone with its start moved by -60 to +120 ms (the cut a VAD
piece of the whole file may make), to show how much "alone" itself moves.
Reported per stretch and pooled per language (errors over
reference length, so long stretches weigh more), summed over ``--repeat`` runs: a window
that fails the quality checks is decoded again by sampling, so two runs differ.

Usage:
    .venv/bin/python benchmarks/mixed_language.py [--model base] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, OUT, machine, manifest_rows, markdown_table

GAP_SECONDS = 0.5
#: A stretch more than 2 points worse inside than alone is also transcribed alone from
#: these start points (ms from its first sample): how much "alone" moves with the cut.
SHIFTS_MS = (-60, -30, 30, 60, 90, 120)


def _groups(rows: list[dict[str, str]], n: int) -> list[list[dict[str, str]]]:
    """``rows`` in ``n`` consecutive groups of near-equal size."""
    return [list(g) for g in np.array_split(np.array(rows, dtype=object), n)]


def _stretch(rows: list[dict[str, str]]) -> tuple[np.ndarray, str]:
    from malsori import SAMPLE_RATE, load_audio

    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for r in rows:
        parts += [load_audio(EVALDATA / r["path"]), gap]
    return np.concatenate(parts), " ".join(r["reference"] for r in rows)


def files() -> dict[str, list[tuple[str, list[dict[str, str]]]]]:
    en = [r for r in manifest_rows("en") if not r["path"].startswith("long/")]
    ko = [r for r in manifest_rows("ko") if not r["path"].startswith("long/")]
    en4, ko3 = _groups(en, 4), _groups(ko, 3)
    en3, ko4 = _groups(en, 3), _groups(ko, 4)
    return {
        "en-first": [
            ("en", en4[0]), ("ko", ko3[0]), ("en", en4[1]), ("ko", ko3[1]),
            ("en", en4[2]), ("ko", ko3[2]), ("en", en4[3]),
        ],
        "ko-first": [
            ("ko", ko4[3]), ("en", en3[2]), ("ko", ko4[0]), ("en", en3[0]),
            ("ko", ko4[2]), ("en", en3[1]), ("ko", ko4[1]),
        ],
    }  # fmt: skip


def run(
    model_name: str, repeat: int
) -> tuple[list[list[str]], dict[str, dict[str, list[int]]], float]:
    import malsori
    from malsori.evaluate.metrics import score

    model = malsori.load_model(model_name)
    rows: list[list[str]] = []
    pooled: dict[str, dict[str, list[int]]] = {}
    seconds = 0.0
    for name, layout in files().items():
        stretches = [(lang, *_stretch(group)) for lang, group in layout]
        audio = np.concatenate([a for _, a, _ in stretches])
        bounds = np.cumsum([0.0] + [len(a) / malsori.SAMPLE_RATE for _, a, _ in stretches])
        by_stretch: list[list[list[Any]]] = [[] for _ in stretches]
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = malsori.transcribe(audio, model)
            seconds += time.perf_counter() - t0
            runs: list[list[Any]] = [[] for _ in stretches]
            for seg in result.segments:
                k = int(np.searchsorted(bounds, (seg.start + seg.end) / 2, side="right")) - 1
                runs[min(max(k, 0), len(stretches) - 1)].append(seg)
            for k, segs in enumerate(runs):
                by_stretch[k].append(segs)
        for k, ((lang, stretch_audio, reference), tries) in enumerate(
            zip(stretches, by_stretch, strict=True)
        ):
            cer = lang in ("ko", "ja", "zh")
            unit = "CER" if cer else "WER"
            err_in = err_alone = length = 0
            for segs in tries:
                alone = malsori.transcribe(stretch_audio, model)
                inside = score(reference, "".join(s.text for s in segs), lang)
                by_itself = score(reference, alone.text, lang)
                err_in += inside.char_errors if cer else inside.errors
                err_alone += by_itself.char_errors if cer else by_itself.errors
                length += inside.ref_chars if cer else inside.ref_words
            acc = pooled.setdefault(lang, {"inside": [0, 0], "alone": [0, 0]})
            acc["inside"][0] += err_in
            acc["inside"][1] += length
            acc["alone"][0] += err_alone
            acc["alone"][1] += length
            languages = sorted({s.language for segs in tries for s in segs})
            moved = "-"
            if (err_in - err_alone) / length > 0.02:  # over the 2 points: how stable
                # is "alone" itself? The same stretch, cut a few tens of ms earlier or later.
                first = sum(len(a) for _, a, _ in stretches[:k])
                last = first + len(stretch_audio)
                found = []
                for ms in SHIFTS_MS:
                    cut = audio[max(0, first + ms * malsori.SAMPLE_RATE // 1000) : last]
                    hyp = malsori.transcribe(cut, model).text
                    sc = score(reference, hyp, lang)
                    found.append(100 * (sc.char_errors if cer else sc.errors) / (length / repeat))
                moved = (
                    f"{min(found):.1f}-{max(found):.1f}% (median {float(np.median(found)):.1f}%)"
                )
            rows.append(
                [
                    name,
                    str(k + 1),
                    lang,
                    f"{bounds[k]:.0f}-{bounds[k + 1]:.0f} s",
                    ",".join(languages) or "(none)",
                    f"{unit} {100 * err_in / length:.1f}%",
                    f"{100 * err_alone / length:.1f}%",
                    f"{100 * (err_in - err_alone) / length:+.1f}",
                    moved,
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    return rows, pooled, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows, pooled, seconds = run(args.model, args.repeat)
    header = [
        "file",
        "stretch",
        "spoken",
        "time",
        "languages found",
        "inside the file",
        "alone",
        "gap (points)",
        "alone, cut 60 ms earlier to 120 ms later",
    ]
    summary = []
    for lang, acc in sorted(pooled.items()):
        e_in, n = acc["inside"]
        n_once = n // args.repeat
        e_alone, _ = acc["alone"]
        summary.append(
            [
                lang,
                f"{n_once}",
                f"{100 * e_in / n:.2f}%",
                f"{100 * e_alone / n:.2f}%",
                f"{100 * (e_in - e_alone) / n:+.2f}",
            ]
        )
    text = "\n\n".join(
        [
            f"# Mixed languages ({args.model}, no language given, {args.repeat} runs pooled)"
            f"\n\n{machine()}",
            markdown_table(header, rows),
            markdown_table(
                [
                    "language",
                    "reference length (words / characters)",
                    "inside the files",
                    "alone",
                    "gap (points)",
                ],
                summary,
            ),
            f"Transcribing both files took {seconds / args.repeat:.1f} s per run.",
        ]
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mixed_language.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
