"""Live transcription (issue 17): real recordings streamed at real-time pace through
``malsori.live`` (the code behind ``malsori live`` and ``/v1/realtime``), compared with
offline ``malsori transcribe`` of the same audio.

    .venv/bin/python benchmarks/live.py [--files en_long,ko_long] [--seconds N]
                                        [--concurrent 2] [--minutes 10] [--model base]

Per file: final WER (English, Whisper's normalizer) or CER (Korean, no spaces) of the live
transcript and of the offline one; the latency of every confirmed word, measured against
the end of the same word in the offline transcript (words matched by alignment): median
and p95; the first text (partial or confirmed) of each utterance after its speech started
(VAD onset); the lag (received audio a decode had not seen) over time; peak RSS.
``--concurrent 2`` runs two sessions at once on the same model (one process);
``--minutes 10`` streams the English audio repeated to that length (lag and RSS over time).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, english_wer, machine, manifest_rows, markdown_table

SR = 16000


def long_file(language: str) -> tuple[np.ndarray, str]:
    from malsori import load_audio

    row = next(r for r in manifest_rows(language) if r["path"].startswith("long/"))
    return load_audio(EVALDATA / row["path"]), row["reference"]


def score(language: str, reference: str, hypothesis: str) -> float:
    if language == "en":
        return english_wer(reference, hypothesis)
    from malsori.evaluate.metrics import score as malsori_score

    return float(malsori_score(reference, hypothesis, language).cer)


class PacedArray:
    """A LiveSource over samples in memory, sent in 100 ms chunks at real-time pace."""

    def __init__(self, audio: np.ndarray, name: str) -> None:
        self.audio, self.name = audio, name
        self._closed = threading.Event()
        self.t0 = 0.0

    def chunks(self) -> Iterator[np.ndarray]:
        step = SR // 10
        self.t0 = time.monotonic()
        for i in range(0, len(self.audio), step):
            delay = self.t0 + (i + step) / SR - time.monotonic()
            if delay > 0 and self._closed.wait(delay):
                return
            yield self.audio[i : i + step]

    def close(self) -> None:
        self._closed.set()


def _key(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


@dataclass
class Run:
    name: str
    language: str
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, confirmed at)
    first_text: dict[str, float] = field(default_factory=dict)  # item -> first text at
    onsets: dict[str, float] = field(default_factory=dict)  # item -> speech onset
    rss: list[tuple[float, float]] = field(default_factory=list)


def stream(
    audio: np.ndarray,
    language: str,
    model: Any,
    name: str,
    beam: int = 0,
    final_pass_s: float | None = None,
) -> tuple[Run, Any]:
    from malsori.live import LiveOptions, LiveSession, SpeechStarted, TextDelta, run_live

    run = Run(name, language)
    source = PacedArray(audio, name)
    options = LiveOptions(language=language, beam_size=beam)
    if final_pass_s is not None:
        options = replace(options, final_pass_s=final_pass_s)
    prefix = options.turn.prefix_padding_ms / 1000

    def now() -> float:
        return time.monotonic() - source.t0

    def emit(event: Any) -> None:
        if isinstance(event, SpeechStarted):
            run.onsets[event.item] = event.start + prefix
        elif isinstance(event, TextDelta):
            t = now()
            if (event.text.strip() or event.partial.strip()) and event.item not in run.first_text:
                run.first_text[event.item] = t
            run.words += [(w, t) for w in event.text.split()]

    session = LiveSession(model, options, emit)
    run_live(source, session)
    return run, session


def latencies(run: Run, offline_words: list[Any]) -> list[float]:
    """Confirmation time minus the end of the same word offline (matched by alignment)."""
    live = [_key(w) for w, _ in run.words]
    ref = [_key(w.word) for w in offline_words]
    out = []
    matcher = difflib.SequenceMatcher(a=live, b=ref, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            out.append(run.words[block.a + k][1] - offline_words[block.b + k].end)
    return out


def per_minute(lags: list[tuple[float, float]], duration: float) -> list[float]:
    """The largest lag of each minute of the stream."""
    minutes = range(int(np.ceil(duration / 60)))
    return [round(max((lag for t, lag in lags if m * 60 <= t < m * 60 + 60), default=0.0), 1)
            for m in minutes]  # fmt: skip


def lag_summary(lags: list[tuple[float, float]], duration: float) -> str:
    """Max lag per third of the stream: growing lag shows as rising numbers."""
    parts = []
    for i in range(3):
        lo, hi = duration * i / 3, duration * (i + 1) / 3
        seg = [lag for t, lag in lags if lo <= t < hi]
        parts.append(f"{max(seg, default=0):.1f}")
    return " / ".join(parts)


def collect(out: list[tuple[Run, Any]], *args: Any) -> None:
    out.append(stream(*args))


def sample_rss(proc: Any, out: list[tuple[float, float]], stop: threading.Event) -> None:
    t0 = time.monotonic()
    while not stop.wait(5):
        out.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="en_long,ko_long")
    p.add_argument("--seconds", type=float, default=0, help="only the first N s of each file")
    p.add_argument("--concurrent", type=int, default=1)
    p.add_argument("--minutes", type=float, default=0, help="English repeated to N minutes")
    p.add_argument("--model", default="base")
    p.add_argument("--beam-size", type=int, default=0, help="0 = automatic (5 for Korean)")
    p.add_argument(
        "--final-pass", type=float, default=None,
        help="LiveOptions.final_pass_s (0 = off) [the default, 30 s]",
    )  # fmt: skip
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import malsori

    model = malsori.load_model(args.model, compute_type="int8")
    proc = psutil.Process()
    print(f"machine: {machine()}; load {Path('/proc/loadavg').read_text().split()[:3]}")
    results = []
    for spec in args.files.split(","):
        language = "en" if spec.startswith("en") else "ko"
        audio, reference = long_file(language)
        if args.minutes:
            reps = int(np.ceil(args.minutes * 60 * SR / len(audio)))
            gap = np.zeros(SR // 2, np.float32)
            looped = np.concatenate([np.concatenate([audio, gap])] * reps)
            audio = looped[: int(args.minutes * 60 * SR)]
            reference = ""  # scored against the offline transcript
        if args.seconds:
            audio = audio[: int(args.seconds * SR)]
            reference = ""
        duration = len(audio) / SR
        offline = malsori.transcribe(audio, model, language=language, word_timestamps=True)
        rss: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(proc, rss, stop), daemon=True)
        sampler.start()
        outcomes: list[tuple[Run, Any]] = []
        threads = [
            threading.Thread(
                target=collect,
                args=(
                    outcomes,
                    audio,
                    language,
                    model,
                    f"{spec}#{n + 1}",
                    args.beam_size,
                    args.final_pass,
                ),
            )
            for n in range(args.concurrent)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        for run, session in outcomes:
            lat = latencies(run, offline.words)
            first = [run.first_text[i] - run.onsets[i] for i in run.first_text if i in run.onsets]
            live_text = session.transcript().text
            row = {
                "file": run.name,
                "beam": args.beam_size,
                "seconds": round(duration, 1),
                "concurrent": args.concurrent,
                "metric": "WER" if language == "en" else "CER",
                "offline": score(language, reference or offline.text, offline.text),
                "live": score(language, reference or offline.text, live_text),
                "matched_words": f"{len(lat)}/{len(offline.words)}",
                "latency_median": float(np.median(lat)) if lat else None,
                "latency_p95": float(np.percentile(lat, 95)) if lat else None,
                "first_text_median": float(np.median(first)) if first else None,
                "first_text_p95": float(np.percentile(first, 95)) if first else None,
                "decodes": session.stats.decodes,
                "decode_s_mean": session.stats.decode_seconds / max(1, session.stats.decodes),
                "lag_max_thirds": lag_summary(session.stats.lags, duration),
                "degraded_decodes": session.stats.degraded_decodes,
                "final_passes": session.stats.final_passes,
                "rss_mb_per_minute": [round(r) for t, r in rss if int(t) % 60 < 5],
                "lag_s_max_per_minute": per_minute(session.stats.lags, duration),
                "rss_mb_first_last_max": (
                    f"{rss[0][1]:.0f} / {rss[-1][1]:.0f} / {max(r for _, r in rss):.0f}"
                    if rss
                    else ""
                ),
            }
            results.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    header = ["file", "s", "sessions", "offline", "live", "confirmed latency median / p95",
              "first text median / p95", "max lag by thirds (s)",
              "RSS MB first / last / max"]  # fmt: skip
    rows = [
        [r["file"], f"{r['seconds']:.0f}", str(r["concurrent"]),
         f"{r['metric']} {r['offline']:.1%}", f"{r['metric']} {r['live']:.1%}",
         f"{r['latency_median']:.2f} / {r['latency_p95']:.2f} s ({r['matched_words']} words)",
         f"{r['first_text_median']:.2f} / {r['first_text_p95']:.2f} s",
         r["lag_max_thirds"], r["rss_mb_first_last_max"]]
        for r in results
    ]  # fmt: skip
    print(markdown_table(header, rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
