"""Long-form decoding (issue 14): malsori's own pipeline vs faster-whisper's, side by side.

    .venv/bin/python benchmarks/longform.py [--repeat 2] [--memory] [--configs a,b,...]

Files: ``en_long`` (the 29 English manifest rows joined with 0.5 s of silence, ~350 s) and
the long Korean evaldata file (``long/emotiontts_...``, 271 s). Every (configuration, file)
runs in its own process, so its peak RSS is its own; times exclude model loading and are
the minimum of ``--repeat`` runs. English: WER with Whisper's English normalizer. Korean:
CER without spaces (the headline), CER with spaces, and the hypothesis/reference length
ratio (below ~0.95 means speech was dropped).

``--memory`` adds the bounded-memory check: malsori's default on a 10-minute and a 2-hour
WAV built by repeating evaldata audio (English and Korean), read from disk (streamed),
peak RSS of each and the time to the first segment.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EVALDATA,
    OUT,
    english_wer,
    long_english,
    machine,
    manifest_rows,
    markdown_table,
    peak_rss_mb,
    run_child,
)

# name -> (description, load_model kwargs, DecodeOptions kwargs). The stock configurations
# load the model as faster-whisper does (one worker); malsori's default loads two on a CPU.
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "original": (
        "original notes: int8, cpu_threads=12, beam 5, sequential",
        {"compute_type": "int8", "cpu_threads": 12, "num_workers": 1},
        {"beam_size": 5, "batch_size": 1},
    ),
    "fw-greedy": (
        "faster-whisper BatchedInferencePipeline, batch 8, greedy (the old default)",
        {"compute_type": "int8", "num_workers": 1},
        {"pipeline": "faster-whisper", "beam_size": 1, "batch_size": 8},
    ),
    "fw-beam5": (
        "faster-whisper BatchedInferencePipeline, batch 8, beam 5",
        {"compute_type": "int8", "num_workers": 1},
        {"pipeline": "faster-whisper", "beam_size": 5, "batch_size": 8},
    ),
    "malsori": (
        "malsori pipeline (default settings: greedy, beam 5 for Korean)",
        {"compute_type": "int8"},
        {"pipeline": "malsori"},
    ),
    "malsori-words": (
        "malsori pipeline + word timestamps",
        {"compute_type": "int8"},
        {"pipeline": "malsori", "word_timestamps": True},
    ),
}
DEFAULT_SET = list(CONFIGS)
FILES = ("en_long", "ko_long")


def korean_long() -> tuple[Path, str]:
    row = next(r for r in manifest_rows("ko") if r["path"].startswith("long/"))
    return EVALDATA / row["path"], row["reference"]


def korean_scores(reference: str, hypothesis: str) -> dict[str, float]:
    import jiwer

    from malsori.evaluate.metrics import normalize, score

    ref, hyp = normalize(reference, "ko"), normalize(hypothesis, "ko")
    return {
        "cer": score(reference, hypothesis, "ko").cer,
        "cer_spaces": float(jiwer.cer(ref, hyp)) if ref else 0.0,
        "length_ratio": len(hyp.replace(" ", "")) / max(1, len(ref.replace(" ", ""))),
    }


def child(cfg: dict[str, Any]) -> None:
    import malsori

    if cfg["mode"] == "memory":
        loaded = malsori.load_model(cfg["model"], compute_type="int8")
        first: list[float] = []
        t0 = time.perf_counter()

        def on_segment(_seg: Any) -> None:
            if not first:
                first.append(time.perf_counter() - t0)

        result = malsori.transcribe(
            cfg["path"], loaded, options=malsori.DecodeOptions(pipeline="malsori"),
            on_segment=on_segment,
        )  # fmt: skip
        print(
            json.dumps(
                {
                    "file": cfg["label"],
                    "audio_s": result.duration,
                    "wall_s": result.processing_time,
                    "rtf": (result.processing_time or 0.0) / result.duration,
                    "first_segment_s": first[0] if first else None,
                    "peak_rss_mb": peak_rss_mb(),
                    "segments": len(result.segments),
                }
            )
        )
        return
    _, load_kw, decode_kw = CONFIGS[cfg["config"]]
    if cfg["file"] == "en_long":
        audio, reference = long_english()
        source: Any = audio
        language = "en"
    else:
        path, reference = korean_long()
        source, language = path, "ko"
    loaded = malsori.load_model(cfg["model"], **load_kw)
    options = malsori.DecodeOptions(language=language, **decode_kw)
    times, text, duration = [], "", 0.0
    for _ in range(cfg["repeat"]):
        result = malsori.transcribe(source, loaded, options=options)
        assert result.processing_time is not None
        times.append(result.processing_time)
        text, duration = result.text, result.duration
    out: dict[str, Any] = {
        "config": cfg["config"],
        "file": cfg["file"],
        "audio_s": duration,
        "wall_s": min(times),
        "rtf": min(times) / duration,
        "peak_rss_mb": peak_rss_mb(),
        "text": text,
    }
    if language == "en":
        out["wer"] = english_wer(reference, text)
    else:
        out.update(korean_scores(reference, text))
    print(json.dumps(out, ensure_ascii=False))


def write_wav(path: Path, seconds: float) -> None:
    """A 16 kHz WAV of ``seconds``, evaldata English and Korean clips repeated, written
    block by block (this process never holds the whole file)."""
    import malsori

    clips = [malsori.load_audio(EVALDATA / r["path"]) for r in manifest_rows()]
    gap = np.zeros(8000, dtype=np.float32)
    target = int(seconds * 16000)
    written = 0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        while written < target:
            for clip in clips:
                part = np.concatenate([clip, gap])[: target - written]
                wav.writeframes((np.clip(part, -1, 1) * 32767).astype("<i2").tobytes())
                written += len(part)
                if written >= target:
                    break


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--configs", default=",".join(DEFAULT_SET))
    ap.add_argument("--files", default=",".join(FILES))
    ap.add_argument("--memory", action="store_true", help="add the 10-minute vs 2-hour RSS check")
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    script = Path(__file__)
    results: list[dict[str, Any]] = []
    if not args.memory_only:
        # interleaved: each file's configurations run back to back
        for file in args.files.split(","):
            for name in args.configs.split(","):
                cfg = {
                    "mode": "speed", "config": name, "file": file,
                    "model": args.model, "repeat": args.repeat,
                }  # fmt: skip
                res = run_child(script, cfg, timeout=3600)
                results.append(res)
                score = res.get("wer", res.get("cer", 0.0))
                print(
                    f"{file} {name}: RTF {res['rtf']:.3f}, error {score:.2%}, "
                    f"RSS {res['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    memory: list[dict[str, Any]] = []
    if args.memory or args.memory_only:
        with tempfile.TemporaryDirectory() as tmp:
            for label, seconds in (("10 min", 600.0), ("2 h", 7200.0)):
                path = Path(tmp) / f"{label.replace(' ', '')}.wav"
                write_wav(path, seconds)
                cfg = {"mode": "memory", "path": str(path), "label": label, "model": args.model}
                res = run_child(script, cfg, timeout=7200)
                memory.append(res)
                print(f"{label}: {res}", file=sys.stderr, flush=True)
                path.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "longform.json").write_text(
        json.dumps({"speed": results, "memory": memory}, indent=2, ensure_ascii=False)
    )
    report = render(args, results, memory)
    (OUT / "longform.md").write_text(report)
    print(report)


def render(
    args: argparse.Namespace, results: list[dict[str, Any]], memory: list[dict[str, Any]]
) -> str:
    parts = []
    cmd = "python benchmarks/longform.py " + " ".join(a for a in sys.argv[1:])
    parts.append(
        f"Model `{args.model}` int8, min of {args.repeat} runs, language given.\n"
        f"Machine: {machine()}; load average at the end: "
        f"{' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}\n"
        f"Command: `{cmd.strip()}`\n"
    )
    for file in FILES:
        rows_ = [r for r in results if r["file"] == file]
        if not rows_:
            continue
        ref = {r["config"]: r for r in rows_}
        greedy = ref.get("fw-greedy", rows_[0])
        orig = ref.get("original", rows_[0])
        header = [
            "config",
            "what",
            "wall s",
            "RTF",
            "vs fw-greedy",
            "speed vs original",
            "peak RSS",
        ]
        header += ["WER"] if file == "en_long" else ["CER", "CER with spaces", "hyp/ref length"]
        table = []
        for r in rows_:
            row = [
                f"`{r['config']}`",
                CONFIGS[r["config"]][0],
                f"{r['wall_s']:.1f}",
                f"{r['rtf']:.3f}",
                f"{r['rtf'] / greedy['rtf']:.2f}x",
                f"{orig['rtf'] / r['rtf']:.2f}x",
                f"{r['peak_rss_mb']:.0f} MB",
            ]
            if file == "en_long":
                row.append(f"{r['wer']:.2%}")
            else:
                row += [f"{r['cer']:.2%}", f"{r['cer_spaces']:.2%}", f"{r['length_ratio']:.3f}"]
            table.append(row)
        parts.append(
            f"### {file} ({rows_[0]['audio_s']:.0f} s)\n\n{markdown_table(header, table)}\n"
        )
    if memory:
        table = [
            [
                m["file"],
                f"{m['audio_s']:.0f}",
                f"{m['rtf']:.3f}",
                f"{m['first_segment_s']:.1f} s" if m["first_segment_s"] is not None else "-",
                f"{m['peak_rss_mb']:.0f} MB",
            ]
            for m in memory
        ]
        ratio = memory[-1]["peak_rss_mb"] / memory[0]["peak_rss_mb"]
        parts.append(
            "### Memory: malsori default on a 10-minute and a 2-hour file (streamed from disk)\n\n"
            + markdown_table(["file", "audio s", "RTF", "first segment", "peak RSS"], table)
            + f"\n\n2 h / 10 min peak RSS: {ratio:.2f}x\n"
        )
    _ = resource  # peak RSS comes from the children
    return "\n".join(parts)


if __name__ == "__main__":
    main()
