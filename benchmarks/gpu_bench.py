"""en_long through malsori's pipeline on each device and compute type, for docs/gpu.md.

    python3 benchmarks/gpu_bench.py MODEL_DIR AUDIO_DIR

AUDIO_DIR holds ``en_long.flac`` and its reference ``en_long.txt`` (the 29 English evaldata
clips joined, as ``benchmarks/_common.long_english`` builds them). Each configuration is
timed twice after loading; the best is printed with its WER. Run it on a GPU machine after
``benchmarks/gpu_check.sh`` staged the packages (see there).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jiwer import wer
from whisper_normalizer.english import EnglishTextNormalizer

import malsori
from malsori.audio import load_audio

CONFIGS = [  # device, compute type, pipeline, word timestamps
    ("cuda", "float16", "malsori", False),
    ("cuda", "float16", "malsori", True),
    ("cuda", "int8_float16", "malsori", False),
    ("cuda", "int8", "malsori", False),
    ("cuda", "float16", "faster-whisper", False),
    ("cpu", "int8", "malsori", False),
]


def main() -> None:
    model, folder = sys.argv[1], Path(sys.argv[2])
    norm = EnglishTextNormalizer()
    reference = norm((folder / "en_long.txt").read_text(encoding="utf-8"))
    audio = load_audio(str(folder / "en_long.flac"))
    for device, compute_type, pipeline, words in CONFIGS:
        loaded = malsori.load_model(model, device=device, compute_type=compute_type)
        options = malsori.DecodeOptions(language="en", pipeline=pipeline, word_timestamps=words)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            result = malsori.transcribe(audio, loaded, options=options)
            times.append(time.perf_counter() - t0)
        best = min(times)
        print(
            f"{device:5} {compute_type:13} {pipeline:15} words={words!s:5} "
            f"used={loaded.device}/{loaded.compute_type} {best:.2f} s "
            f"x{result.duration / best:.0f} WER {100 * wer(reference, norm(result.text)):.2f}%"
        )


if __name__ == "__main__":
    main()
