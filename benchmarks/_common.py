"""Helpers shared by the benchmark scripts: evaldata access, the long English file, child
processes that report their own peak RSS, and Markdown tables."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVALDATA = Path(os.environ.get("MALSORI_EVALDATA", ROOT.parent / "shared" / "evaldata"))
OUT = ROOT / "benchmarks" / "out"


def manifest_rows(language: str | None = None) -> list[dict[str, str]]:
    with open(EVALDATA / "manifest.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r for r in rows if language is None or r["language"] == language]


def long_english() -> tuple[np.ndarray, str]:
    """The 29 English rows of the manifest joined in order with 0.5 s of silence (~350 s),
    as in shared/reference-measurements.md; returns (16 kHz audio, joined reference)."""
    from malsori import SAMPLE_RATE, load_audio

    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    parts: list[np.ndarray] = []
    refs: list[str] = []
    for row in manifest_rows("en"):
        if parts:
            parts.append(gap)
        parts.append(load_audio(EVALDATA / row["path"]))
        refs.append(row["reference"])
    return np.concatenate(parts), " ".join(refs)


def english_wer(reference: str, hypothesis: str) -> float:
    """WER after Whisper's English text normalizer (the reference measurements' metric)."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, config: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``script --child JSON`` in a fresh process; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed for {config}: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {psutil.cpu_count(logical=False)} physical / {psutil.cpu_count()} logical cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
