#!/usr/bin/env python3
"""Make a small jargon dataset with espeak-ng: train.tsv and test.tsv (malsori's manifest format).

Every sentence is dense in PyTorch and speech-engineering vocabulary that the stock Whisper
models write wrongly ("data loader" for DataLoader, "Adam W" for AdamW, ...). The sentences
are split into train and test *by sentence*: no test sentence is ever heard in training, so
the test set measures whether the model learned the vocabulary, not the sentences. Each
sentence is spoken by several espeak-ng voices at several speeds.

espeak-ng reads the spoken form (``SPOKEN``); the reference is the written form, the way
the words appear in code and docs.

    python examples/finetune/make_dataset.py data/jargon
    python examples/finetune/make_dataset.py data/jargon --voices en-us,en --speeds 150
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: Written form -> how espeak-ng should say it.
SPOKEN = {
    "TensorDataset": "tensor dataset",
    "DataLoader": "data loader",
    "zero_grad": "zero grad",
    "CTranslate2": "C translate two",
    "faster-whisper": "faster whisper",
    "log-mel": "log mel",
    "AdamW": "Adam W",
    "PyTorch": "pie torch",
    "nn.Module": "N N module",
    "state_dict": "state dict",
    "torchrun": "torch run",
    "int8": "int eight",
    "float16": "float sixteen",
    "espeak-ng": "e speak N G",
    "CUDA": "cooda",
    "malsori": "mal sorry",
    "MSELoss": "M S E loss",
    "num_workers": "num workers",
    "GELU": "gel you",
    "ONNX": "onnyx",
}

SENTENCES = [
    "Wrap the tensors in a TensorDataset and hand it to a DataLoader.",
    "Call zero_grad before every backward pass in PyTorch.",
    "CTranslate2 runs the converted model inside faster-whisper.",
    "The encoder reads a log-mel spectrogram of thirty seconds.",
    "We train the decoder with AdamW and a small learning rate.",
    "Every layer of an nn.Module is created in its init method.",
    "Save the state_dict after each epoch and resume with torchrun.",
    "Quantize the weights to int8 for the CPU and float16 for CUDA.",
    "The test clips were spoken by espeak-ng in several voices.",
    "malsori wraps faster-whisper and CTranslate2 behind one command.",
    "Use MSELoss for regression and cross entropy for the tokens.",
    "Set num_workers on the DataLoader to decode audio in parallel.",
    "The feed forward block of Whisper uses a GELU activation.",
    "Export the model to ONNX only if CTranslate2 cannot run it.",
    "A TensorDataset keeps features and labels side by side.",
    "PyTorch accumulates gradients until you call zero_grad.",
    "The log-mel features have eighty bins per frame.",
    "AdamW decouples weight decay from the gradient update.",
    "Load the state_dict into the nn.Module before you export it.",
    "faster-whisper is several times faster than the PyTorch reference.",
    "torchrun starts one process per GPU and sets the rank.",
    "An int8 model needs a quarter of the memory of float32.",
    "On CUDA the default compute type is float16.",
    "malsori fine-tunes the model with plain PyTorch and AdamW.",
    "The DataLoader shuffles the TensorDataset on every epoch.",
    "CTranslate2 fuses the query key and value projections.",
    "espeak-ng writes a wave file that ffmpeg resamples.",
    "The GELU follows the first linear layer of the block.",
    "Compute the MSELoss between the prediction and the target.",
    "Raise num_workers when the DataLoader starves the GPU.",
    "Convert the log-mel frames to a tensor of thirty seconds.",
    "The ONNX export of the encoder failed on a dynamic axis.",
    "Call zero_grad, then backward, then step with AdamW.",
    "malsori serves the exported CTranslate2 model over HTTP.",
    "Check that CUDA is available before you move the nn.Module.",
    "The float16 export drifts a little from the PyTorch logits.",
    "Start the job with torchrun and two processes on one machine.",
    "faster-whisper reads the tokenizer and the int8 weights.",
    "Keep the best state_dict by its validation loss.",
    "The espeak-ng voices make the TensorDataset of this test.",
]

#: (voice, words per minute) combinations: the voices espeak-ng ships for English.
VOICES = ("en-us", "en", "en-us+f3", "en+m3")
SPEEDS = (140, 170)


def split(sentences: list[str], every: int = 4) -> tuple[list[str], list[str]]:
    """Every ``every``-th sentence (from the third on) is a test sentence; the rest train."""
    test = [s for i, s in enumerate(sentences) if i % every == 2]
    train = [s for i, s in enumerate(sentences) if i % every != 2]
    return train, test


def spoken(sentence: str) -> str:
    for written, said in SPOKEN.items():
        sentence = re.sub(rf"(?<![\w-]){re.escape(written)}(?![\w-])", said, sentence)
    return sentence


def speak(text: str, voice: str, speed: int, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True
        )
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(raw),
                "-ar",
                "16000",
                "-ac",
                "1",
                str(dest),
            ],
            check=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--voices", default=",".join(VOICES), help="espeak-ng voices")
    parser.add_argument("--speeds", default=",".join(map(str, SPEEDS)), help="words/minute")
    parser.add_argument(
        "--test-voices", default=None, help="voices for the test set (default: --voices)"
    )
    parser.add_argument(
        "--sentences", type=int, default=len(SENTENCES), help="use the first N sentences"
    )
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            print(
                f"make_dataset: {tool} is not installed (apt-get install {tool})", file=sys.stderr
            )
            return 1
    voices = [v for v in args.voices.split(",") if v]
    test_voices = [v for v in (args.test_voices or args.voices).split(",") if v]
    speeds = [int(s) for s in args.speeds.split(",") if s]
    train, test = split(SENTENCES[: args.sentences])
    audio = args.out / "audio"
    audio.mkdir(parents=True, exist_ok=True)

    jobs: list[tuple[str, str, str, int, Path]] = []
    manifests: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for part, sentences, part_voices in (("train", train, voices), ("test", test, test_voices)):
        for i, sentence in enumerate(sentences):
            for voice in part_voices:
                for speed in speeds:
                    name = f"{part}-{i:02d}-{voice.replace('+', '_')}-{speed}.wav"
                    jobs.append((part, sentence, voice, speed, audio / name))
                    manifests[part].append((f"audio/{name}", sentence))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: speak(spoken(j[1]), j[2], j[3], j[4]), jobs))
    for part, rows in manifests.items():
        with open(args.out / f"{part}.tsv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["path", "language", "reference", "source", "license"])
            for path, sentence in rows:
                writer.writerow([path, "en", sentence, "espeak-ng (malsori jargon set)", "CC0"])
    print(
        f"{args.out}: train.tsv {len(manifests['train'])} clips ({len(train)} sentences), "
        f"test.tsv {len(manifests['test'])} clips ({len(test)} sentences)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
