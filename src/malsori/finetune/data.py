"""Steps 1-2 for Whisper: audio + reference -> log-mel and token tensors -> a Dataset.

Preprocessing is faster-whisper's own, so training sees what inference sees:

* features: ``faster_whisper.feature_extractor.FeatureExtractor`` on the decoded 16 kHz
  audio, the last frame dropped and the result padded to 30 s (3000 frames) with
  ``faster_whisper.audio.pad_or_trim``, exactly as ``BatchedInferencePipeline`` (malsori's
  default) prepares each chunk;
* tokens: ``faster_whisper.tokenizer.Tokenizer`` (the model's tokenizer.json): the decoder
  input is the start-of-transcript sequence (``<|startoftranscript|>``, plus language and
  task for multilingual models), ``<|notimestamps|>``, then the reference encoded with a
  leading space; the labels are the same shifted by one, ending in ``<|endoftext|>``. The
  prompt positions are not scored (inference forces them), nor is padding: padding is
  masked by length, never by id (the pad id *is* end-of-text).

Rows that cannot be used (audio that does not decode, audio over 30 s, a reference that
tokenizes past the decoder's 448 positions) are collected as problems with their manifest
line and skipped; they are never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from ..audio import SAMPLE_RATE, load_audio
from ..capabilities import unsupported
from ..errors import MalsoriError
from ..manifest import ManifestProblem, read_manifest

MAX_SECONDS = 30.0
IGNORE = -100  # labels with this value are not scored (nn.CrossEntropyLoss's ignore_index)


@dataclass(frozen=True)
class Example:
    line: int
    path: Path
    language: str
    reference: str
    duration: float
    tokens: tuple[int, ...]  # decoder input: prompt + text
    prompt_len: int


class WhisperTokens:
    """The token side of preprocessing, from the model directory's tokenizer.json."""

    def __init__(
        self, model_dir: Path, multilingual: bool, max_positions: int, name: str | None = None
    ) -> None:
        from faster_whisper.tokenizer import Tokenizer

        from .ct2_import import load_tokenizer

        self.name = name or Path(model_dir).name  # the model, as messages call it
        self._hf = load_tokenizer(model_dir)
        self._factory = Tokenizer
        self.multilingual = multilingual
        self.max_positions = max_positions
        plain = Tokenizer(self._hf, multilingual=False)
        self.eot = plain.eot

    def _tokenizer(self, language: str) -> Any:
        return self._factory(
            self._hf,
            multilingual=self.multilingual,
            task="transcribe",
            language=language if self.multilingual else None,
        )

    def prompt(self, language: str) -> list[int]:
        """What faster-whisper feeds the decoder first (without_timestamps=True)."""
        tok = self._tokenizer(language)
        return [*tok.sot_sequence, tok.no_timestamps]

    def encode(self, text: str, language: str) -> tuple[tuple[int, ...], int]:
        """(decoder input ids, prompt length) for one reference."""
        prompt = self.prompt(language)
        text_ids = self._tokenizer(language).encode(" " + text.strip())
        return tuple(prompt + text_ids), len(prompt)


def log_mel(audio: npt.NDArray[np.float32], feature_extractor: Any) -> npt.NDArray[np.float32]:
    """Features exactly as faster-whisper's batched inference computes them for one chunk."""
    from faster_whisper.audio import pad_or_trim

    features = feature_extractor(audio)[..., :-1]
    return np.asarray(pad_or_trim(features), dtype=np.float32)


def load_examples(
    manifest: str | Path,
    tokens: WhisperTokens,
    *,
    language: str | None = None,
) -> tuple[list[Example], list[ManifestProblem]]:
    """Read a manifest (the evaluation TSV format) and check every row: decodable audio of
    at most 30 s, and a reference that fits the decoder. ``language`` overrides (or stands
    in for a missing) language column."""
    rows, problems = read_manifest(manifest, default_language=language or "en")
    examples: list[Example] = []
    for row in rows:
        lang = language or row.language
        why_not = unsupported(tokens.name, tokens.multilingual, lang)
        if why_not is not None:
            problems.append(ManifestProblem(row.line, f"{row.path.name}: {why_not}"))
            continue
        try:
            audio = load_audio(row.path)
        except MalsoriError as exc:
            problems.append(ManifestProblem(row.line, str(exc)))
            continue
        duration = len(audio) / SAMPLE_RATE
        if duration > MAX_SECONDS:
            problems.append(
                ManifestProblem(
                    row.line,
                    f"{row.path.name} is {duration:.1f} s long; Whisper trains on "
                    f"clips of at most {MAX_SECONDS:.0f} s (cut it into shorter clips)",
                )
            )
            continue
        if duration < 0.1:
            problems.append(ManifestProblem(row.line, f"{row.path.name} is empty"))
            continue
        ids, prompt_len = tokens.encode(row.reference, lang)
        if len(ids) + 1 > tokens.max_positions:
            problems.append(
                ManifestProblem(
                    row.line,
                    f"the reference of {row.path.name} is {len(ids) + 1} tokens with "
                    f"the prompt; the decoder takes at most {tokens.max_positions}",
                )
            )
            continue
        examples.append(Example(row.line, row.path, lang, row.reference, duration, ids, prompt_len))
    return examples, problems


class SpeechDataset(Dataset[dict[str, torch.Tensor]]):
    """One item per example: ``input_features`` (n_mels, 3000), ``decoder_input_ids`` and
    ``labels`` (same length, prompt and end masked as described above). Audio is decoded
    lazily, so a large dataset does not sit in memory."""

    def __init__(self, examples: list[Example], n_mels: int, eot: int) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        self.examples = examples
        self.eot = eot
        self.feature_extractor = FeatureExtractor(feature_size=n_mels)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ex = self.examples[index]
        features = log_mel(load_audio(ex.path), self.feature_extractor)
        ids = list(ex.tokens)
        labels = [*ids[1:], self.eot]
        labels[: ex.prompt_len - 1] = [IGNORE] * (ex.prompt_len - 1)
        return {
            "input_features": torch.from_numpy(features),
            "decoder_input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),  # for the frozen encoder's cache
        }


class Collator:
    """Pads a list of items to one batch: token ids with end-of-text, labels with IGNORE."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = max(len(item["decoder_input_ids"]) for item in items)
        ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
        for i, item in enumerate(items):
            n = len(item["decoder_input_ids"])
            ids[i, :n] = item["decoder_input_ids"]
            labels[i, :n] = item["labels"]
        return {
            "input_features": torch.stack([item["input_features"] for item in items]),
            "decoder_input_ids": ids,
            "labels": labels,
            "index": torch.stack([item["index"] for item in items]),
        }
