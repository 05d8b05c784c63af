"""Transcription speed of configurations side by side, each in its own process.

    .venv/bin/python benchmarks/transcribe_speed.py [--model base] [--repeat 2]

Audio: the English evaldata rows joined with 0.5 s of silence (~350 s, see _common.py).
Reported per configuration: model load time, transcription wall time (minimum of --repeat
runs, model load excluded), RTF, x-realtime, speed relative to the original notes'
configuration, peak RSS of the process, and WER with Whisper's English normalizer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, english_wer, long_english, machine, markdown_table, peak_rss_mb, run_child

# name -> (description, load_model kwargs, DecodeOptions kwargs)
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "original": (
        "original notes: int8, cpu_threads=12, beam 5, sequential",
        {"compute_type": "int8", "cpu_threads": 12},
        {"beam_size": 5, "batch_size": 1},
    ),
    "cores-beam5": (
        "int8, threads = physical cores, beam 5, sequential",
        {"compute_type": "int8"},
        {"beam_size": 5, "batch_size": 1},
    ),
    "default": (
        "malsori default: int8, physical cores, --batch-size 8, greedy",
        {"compute_type": "int8"},
        {},
    ),
    "threads1": (
        "int8, 1 thread, beam 5, sequential",
        {"compute_type": "int8", "cpu_threads": 1},
        {"beam_size": 5, "batch_size": 1},
    ),
    "greedy": (
        "int8, physical cores, beam 1, sequential",
        {"compute_type": "int8"},
        {"beam_size": 1, "batch_size": 1},
    ),
    "batch8": (
        "--batch-size 8 --beam-size 5, int8, physical cores",
        {"compute_type": "int8"},
        {"beam_size": 5, "batch_size": 8},
    ),
    "batch16": (
        "--batch-size 16 --beam-size 5",
        {"compute_type": "int8"},
        {"beam_size": 5, "batch_size": 16},
    ),
    "batch4": (
        "--batch-size 4 --beam-size 5",
        {"compute_type": "int8"},
        {"beam_size": 5, "batch_size": 4},
    ),
    "batch8_greedy_ts": (
        "--batch-size 8 --beam-size 1 with segment timestamps",
        {"compute_type": "int8"},
        {"beam_size": 1, "batch_size": 8, "extra": {"without_timestamps": False}},
    ),
    "float32": (
        "float32, physical cores, beam 5, sequential",
        {"compute_type": "float32"},
        {"beam_size": 5, "batch_size": 1},
    ),
}
DEFAULT_SET = ["original", "cores-beam5", "default", "batch8"]


def child(cfg: dict[str, Any]) -> None:
    import malsori

    audio, reference = long_english()
    _, load_kw, decode_kw = CONFIGS[cfg["config"]]
    t0 = time.perf_counter()
    loaded = malsori.load_model(cfg["model"], **load_kw)
    load_s = time.perf_counter() - t0
    options = malsori.DecodeOptions(language="en", **decode_kw)
    times, text = [], ""
    for _ in range(cfg["repeat"]):
        result = malsori.transcribe(audio, loaded, options=options)
        assert result.processing_time is not None
        times.append(result.processing_time)
        text = result.text
    duration = len(audio) / malsori.SAMPLE_RATE
    print(
        json.dumps(
            {
                "config": cfg["config"],
                "model": cfg["model"],
                "threads": loaded.cpu_threads,
                "compute_type": loaded.compute_type,
                "audio_s": duration,
                "load_s": load_s,
                "wall_s": min(times),
                "rtf": min(times) / duration,
                "peak_rss_mb": peak_rss_mb(),
                "wer": english_wer(reference, text),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--configs", default=",".join(DEFAULT_SET), help=f"comma list from: {', '.join(CONFIGS)}"
    )
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    results = []
    for name in args.configs.split(","):
        res = run_child(
            Path(__file__), {"config": name, "model": args.model, "repeat": args.repeat}
        )
        results.append(res)
        print(f"{name}: RTF {res['rtf']:.3f}, WER {res['wer']:.2%}", file=sys.stderr, flush=True)
    base = next((r for r in results if r["config"] == "original"), results[0])
    rows = [
        [
            f"`{r['config']}`",
            CONFIGS[r["config"]][0],
            str(r["threads"]),
            f"{r['wall_s']:.1f}",
            f"{r['rtf']:.3f}",
            f"{1 / r['rtf']:.1f}x",
            f"{base['rtf'] / r['rtf']:.2f}x",
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['wer']:.2%}",
        ]
        for r in results
    ]
    table = markdown_table(
        [
            "config",
            "what",
            "threads",
            "wall s",
            "RTF",
            "x-realtime",
            f"speed vs `{base['config']}`",
            "peak RSS",
            "WER",
        ],
        rows,
    )
    cmd = "python benchmarks/transcribe_speed.py " + " ".join(sys.argv[1:])
    report = (
        f"Model `{args.model}`, {results[0]['audio_s']:.0f} s of English speech, "
        f"min of {args.repeat} runs.\nMachine: {machine()}\nCommand: `{cmd.strip()}`\n\n{table}\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"transcribe_speed_{args.model}.json").write_text(json.dumps(results, indent=2))
    (OUT / f"transcribe_speed_{args.model}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
