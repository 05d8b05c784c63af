"""Fine-tuning proof, full version: does tiny.en / base learn PyTorch jargon without
forgetting English?

    .venv/bin/python benchmarks/finetune_jargon.py [--models tiny.en,base] [--epochs 3]

1. ``examples/finetune/make_dataset.py`` speaks 40 jargon sentences with 4 espeak-ng voices
   at 2 speeds; 30 sentences train (240 clips), 10 held-out sentences test (80 clips).
2. For each model, ``malsori finetune`` runs as a fresh process (its report carries training
   time and peak RSS), exporting float32 weights (the PyTorch weights, unrounded).
3. WER before/after (int8 compute, beam 5, as ``malsori eval``) on the held-out jargon
   sentences and on the real English speech of ../shared/evaldata (28 short clips, 194 s).
4. Quantization: the float32 export is re-exported as float16 and int8 and every export is
   scored with its own compute type ("default"), to see what the float16 rounding costs.

Targets (issue #7): jargon WER -30% relative or better; real English WER +2 points at most.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, OUT, ROOT, machine, manifest_rows, markdown_table


def real_english_manifest(path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "language", "reference"])
        for row in manifest_rows("en"):
            if not row["path"].startswith("long/"):
                w.writerow([str(EVALDATA / row["path"]), "en", row["reference"]])
    return path


def wer(model: str, manifest: Path, compute_type: str = "int8") -> float:
    from malsori.engine import unload_models
    from malsori.evaluate.manifest import read_manifest
    from malsori.evaluate.runner import EvalConfig, evaluate

    rows, _ = read_manifest(manifest)
    (result,) = evaluate(rows, [EvalConfig(model=model, compute_type=compute_type, beam_size=5)])
    unload_models()
    return float(result.totals()["wer"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--full", action="store_true", help="train the encoder too")
    parser.add_argument(
        "--skip-quantization", action="store_true", help="no float16/int8 re-export table"
    )
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    data = work / "jargon"
    subprocess.run([sys.executable, str(ROOT / "examples/finetune/make_dataset.py"), str(data)],
                   check=True)  # fmt: skip
    real = real_english_manifest(work / "real_en.tsv")
    test = data / "test.tsv"

    results = []
    quant_rows = []
    for model in args.models.split(","):
        out = work / f"{model}-jargon"
        cmd = [
            sys.executable, "-m", "malsori.cli", "finetune", "--model", model,
            "--train", str(data / "train.tsv"), "--eval", str(test), "--output-dir", str(out),
            "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size", "8",
            "--quantization", "float32", "--no-register", "--quiet",
        ] + ([] if args.full else ["--freeze-encoder"])  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        report = json.loads((out / "finetune_report.json").read_text())
        real_before, real_after = wer(model, real), wer(str(out), real)
        row = {
            "model": model,
            "jargon_before": report["wer_before"]["wer"],
            "jargon_after": report["wer_after"]["wer"],
            "real_before": real_before,
            "real_after": real_after,
            "train_s": report["train_time_s"],
            "finetune_wall_s": wall,
            "peak_rss_mb": report["peak_rss_bytes"] / 2**20,
            "train_clips": report["train_examples"],
            "epochs": report["epochs_run"],
        }
        results.append(row)
        print(json.dumps(row), flush=True)

        # Same weights, three storage types, each run with its own compute type.
        if args.skip_quantization:
            continue
        from malsori.finetune import export_ct2, load_whisper

        weights = load_whisper(out)
        source = Path(out)
        for quant in ("float32", "float16", "int8"):
            target = out if quant == "float32" else work / f"{model}-{quant}"
            if quant != "float32":
                export_ct2(weights, source, target, quantization=quant)
            quant_rows.append(
                {
                    "model": model,
                    "export": quant,
                    "size_mb": (target / "model.bin").stat().st_size / 1e6,
                    "jargon": wer(str(target), test, "default"),
                    "real": wer(str(target), real, "default"),
                }
            )
            print(json.dumps(quant_rows[-1]), flush=True)

    pct = "{:.1%}".format
    table = markdown_table(
        ["model", "jargon WER before → after", "relative", "real English WER before → after",
         "train time", "finetune wall", "peak RSS"],
        [
            [
                r["model"],
                f"{pct(r['jargon_before'])} → {pct(r['jargon_after'])}",
                f"{(r['jargon_before'] - r['jargon_after']) / r['jargon_before']:+.0%}",
                f"{pct(r['real_before'])} → {pct(r['real_after'])}",
                f"{r['train_s']:.0f} s",
                f"{r['finetune_wall_s']:.0f} s",
                f"{r['peak_rss_mb']:,.0f} MB",
            ]
            for r in results
        ],
    )  # fmt: skip
    qtable = markdown_table(
        ["model", "export", "model.bin", "jargon WER", "real English WER"],
        [
            [q["model"], q["export"], f"{q['size_mb']:.0f} MB", pct(q["jargon"]), pct(q["real"])]
            for q in quant_rows
        ],
    )
    mode = "encoder and decoder" if args.full else "decoder only (--freeze-encoder)"
    text = (
        f"Machine: {machine()}\n\nTraining: {mode}, {args.epochs} epochs, AdamW lr {args.lr}, "
        f"batch 8, {results[0]['train_clips']} training clips.\n"
        "WER: int8 compute, beam 5 (jargon: 80 held-out clips; real: 28 evaldata clips).\n\n"
        f"{table}\n\nExports of the fine-tuned weights, each run with compute type "
        f"'default' (float32 on this CPU for float32/float16, int8 for int8):\n\n{qtable}\n"
    )
    print(text)
    (OUT / "finetune_jargon.md").write_text(text)
    (OUT / "finetune_jargon.json").write_text(
        json.dumps({"results": results, "quantization": quant_rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
