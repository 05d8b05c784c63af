"""Live transcription with no language given: is each utterance decoded in the language
spoken? (``malsori.live``, the code behind ``malsori live`` and ``/v1/realtime``.)

    .venv/bin/python benchmarks/live_languages.py [--model base]

Three streams, fed half a second at a time and processed as they come (no real-time
pacing: the decisions are the same, the run is shorter): the long English and the long
Korean evaldata files (WER / CER of the session's transcript, and the languages its
utterances were decoded in), and a mixed stream of the first six short English and six
short Korean clips, alternating, 1.5 s of silence after each: each utterance is checked
against the language of the clip under its midpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, english_wer, machine, manifest_rows

SR = 16000


def run(model: object, audio: np.ndarray) -> tuple[object, list[object]]:
    from malsori.live import LiveOptions, LiveSession, UtteranceDone

    events: list[object] = []
    session = LiveSession(model, LiveOptions(), events.append)  # type: ignore[arg-type]
    for i in range(0, len(audio), SR // 2):
        session.feed(audio[i : i + SR // 2])
        session.process()
    session.finish()
    return session, [e for e in events if isinstance(e, UtteranceDone)]


def score(language: str, reference: str, hypothesis: str) -> float:
    if language == "en":
        return english_wer(reference, hypothesis)
    from malsori.evaluate.metrics import score as malsori_score

    return float(malsori_score(reference, hypothesis, language).cer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    import malsori

    print(f"# live_languages.py, {machine()}, model {args.model}")
    model = malsori.load_model(args.model)
    for lang in ("en", "ko"):
        row = next(r for r in manifest_rows(lang) if r["path"].startswith("long/"))
        t0 = time.perf_counter()
        session, done = run(model, malsori.load_audio(EVALDATA / row["path"]))
        found = Counter(d.language for d in done)  # type: ignore[attr-defined]
        metric = "WER" if lang == "en" else "CER"
        value = score(lang, row["reference"], session.transcript().text)  # type: ignore[attr-defined]
        print(f"{lang} long: {metric} {value:.2%}, utterances by language {dict(found)}, "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    en = [r for r in manifest_rows("en") if not r["path"].startswith("long/")][:6]
    ko = [r for r in manifest_rows("ko") if not r["path"].startswith("long/")][:6]
    gap = np.zeros(int(1.5 * SR), np.float32)
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float, str]] = []
    at = 0.0
    for e, k in zip(en, ko, strict=True):
        for row, lang in ((e, "en"), (k, "ko")):
            clip = malsori.load_audio(EVALDATA / row["path"])
            spans.append((at, at + len(clip) / SR, lang))
            parts += [clip, gap]
            at += (len(clip) + len(gap)) / SR
    _, done = run(model, np.concatenate(parts))
    right = 0
    for d in done:
        mid = (d.start + d.end) / 2  # type: ignore[attr-defined]
        spoken = next((lang for a, b, lang in spans if a - 0.75 <= mid <= b + 0.75), "?")
        right += d.language == spoken  # type: ignore[attr-defined]
        print(f"  {spoken} -> {d.language}  {d.start:6.1f}-{d.end:6.1f}  {d.text[:60]}")  # type: ignore[attr-defined]
    print(f"mixed: {right} of {len(done)} utterances decoded in the language spoken")


if __name__ == "__main__":
    main()
