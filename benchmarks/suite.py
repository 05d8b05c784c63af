"""The benchmark suite: speed and accuracy of the original notes' configuration, malsori's
default and fastest configurations, and openai-whisper (PyTorch) on the SAME weights.

    .venv/bin/python benchmarks/suite.py            # writes benchmarks/out/suite.{md,json,png}

Needs the bench set-up: scripts/setup.sh dev bench (torch 2.13.0 CPU + openai-whisper).
Each configuration runs in its own child process (one process tree, one run), on
- the long English file: the 29 English evaldata rows joined with 0.5 s silence (~350 s);
- the short clips of the evaluation manifest: English WER and Korean CER (multilingual only).
Transcription time excludes model loading. Peak RSS is the child's own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EVALDATA,
    OUT,
    long_english,
    machine,
    manifest_rows,
    markdown_table,
    peak_rss_mb,
    run_child,
)

# name -> description, engine, settings
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "original": (
        "original notes: faster-whisper int8, cpu_threads=12, beam 5",
        "faster",
        {"cpu_threads": 12, "beam_size": 5, "batch_size": 1},
    ),
    "fw-beam5": (
        "faster-whisper int8, physical cores, beam 5 (sequential)",
        "faster",
        {"beam_size": 5, "batch_size": 1},
    ),
    "default": ("malsori default: int8, physical cores, batched x8, greedy", "faster", {}),
    "batch8-beam5": (
        "malsori int8, physical cores, batched x8, beam 5",
        "faster",
        {"beam_size": 5, "batch_size": 8},
    ),
    "openai-greedy": (
        "openai-whisper (PyTorch fp32), same weights, greedy",
        "openai",
        {"beam_size": None},
    ),
    "openai-beam5": (
        "openai-whisper (PyTorch fp32), same weights, beam 5",
        "openai",
        {"beam_size": 5},
    ),
}


def _transcriber(engine: str, model: str, settings: dict[str, Any]) -> Any:
    """Returns f(audio_array, language) -> text, with the model loaded once."""
    import malsori

    if engine == "faster":
        decode = {k: v for k, v in settings.items() if k != "cpu_threads"}
        loaded = malsori.load_model(model, cpu_threads=settings.get("cpu_threads"))
        return lambda audio, lang: malsori.transcribe(audio, loaded, language=lang, **decode).text
    from _openai_whisper import load_openai_whisper

    ow = load_openai_whisper(malsori.resolve_model(model).path)
    beam = settings["beam_size"]
    extra = {"beam_size": beam, "best_of": beam} if beam else {}
    return lambda audio, lang: ow.transcribe(audio, language=lang, fp16=False, **extra)["text"]


def child(cfg: dict[str, Any]) -> None:
    import malsori
    from malsori.evaluate.metrics import score

    _, engine, settings = CONFIGS[cfg["config"]]
    t0 = time.perf_counter()
    run = _transcriber(engine, cfg["model"], settings)
    load_s = time.perf_counter() - t0
    multilingual = not cfg["model"].endswith(".en")

    audio, reference = long_english()
    times, text = [], ""
    for _ in range(cfg["repeat"] if engine == "faster" else 1):
        t0 = time.perf_counter()
        text = run(audio, "en")
        times.append(time.perf_counter() - t0)
    long_s = len(audio) / malsori.SAMPLE_RATE
    long_score = score(reference, text, "en")

    short: dict[str, dict[str, float]] = {}
    for lang in ("en", "ko") if multilingual else ("en",):
        errs = words = cerr = chars = 0
        audio_s = proc_s = 0.0
        for row in manifest_rows(lang):
            if row["path"].startswith("long/"):
                continue
            clip = malsori.load_audio(EVALDATA / row["path"])
            t0 = time.perf_counter()
            hyp = run(clip, lang)
            proc_s += time.perf_counter() - t0
            audio_s += len(clip) / malsori.SAMPLE_RATE
            s = score(row["reference"], hyp, lang)
            errs, words = errs + s.errors, words + s.ref_words
            cerr, chars = cerr + s.char_errors, chars + s.ref_chars
        short[lang] = {"wer": errs / words, "cer": cerr / chars, "rtf": proc_s / audio_s}
    print(
        json.dumps(
            {
                "config": cfg["config"],
                "model": cfg["model"],
                "load_s": load_s,
                "long_audio_s": long_s,
                "long_wall_s": min(times),
                "long_rtf": min(times) / long_s,
                "long_wer": long_score.wer,
                "short": short,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in results:
        x, y = 1 / r["long_rtf"], r["long_wer"] * 100
        ax.scatter(x, y, marker="s" if r["config"].startswith("openai") else "o")
        ax.annotate(r["config"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("speed on the 350 s English file (x realtime, log scale)")
    ax.set_ylabel("WER % (Whisper English normalizer)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title("Speed vs WER, Whisper base weights, 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=2, help="runs of the long file (faster-whisper)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=", ".join(CONFIGS))
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    results = []
    for name in args.configs.split(","):
        cfg = {"config": name, "model": args.model, "repeat": args.repeat}
        r = run_child(Path(__file__), cfg, timeout=3600)
        results.append(r)
        print(
            f"{name}: long RTF {r['long_rtf']:.3f} WER {r['long_wer']:.2%}",
            file=sys.stderr,
            flush=True,
        )
    base = next((r for r in results if r["config"] == "original"), results[0])
    rows = []
    for r in results:
        ko = r["short"].get("ko")
        rows.append(
            [
                f"`{r['config']}`",
                CONFIGS[r["config"]][0],
                f"{r['long_wall_s']:.1f}",
                f"{r['long_rtf']:.3f}",
                f"{1 / r['long_rtf']:.1f}x",
                f"{base['long_rtf'] / r['long_rtf']:.2f}x",
                f"{r['peak_rss_mb']:.0f} MB",
                f"{r['long_wer']:.2%}",
                f"{r['short']['en']['wer']:.2%}",
                f"{ko['cer']:.2%}" if ko else "-",
            ]
        )
    table = markdown_table(
        [
            "config",
            "what",
            "wall s (long)",
            "RTF",
            "x-realtime",
            f"speed vs `{base['config']}`",
            "peak RSS",
            "WER long en",
            "WER short en",
            "CER short ko",
        ],
        rows,
    )
    cmd = "python benchmarks/suite.py " + " ".join(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    plot(results, OUT / "suite.png")
    report = (
        f"Model `{args.model}`; long file {results[0]['long_audio_s']:.0f} s; "
        f"faster-whisper rows: min of {args.repeat} runs, openai-whisper rows: 1 run.\n"
        f"Machine: {machine()}\nCommand: `{cmd.strip()}`\n\n{table}\n"
    )
    (OUT / "suite.json").write_text(json.dumps(results, indent=2))
    (OUT / "suite.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
