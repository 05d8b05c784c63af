"""Export: a PyTorch ``WhisperForConditionalGeneration`` -> a CTranslate2 directory that
faster-whisper loads; the way in is :mod:`malsori.finetune.ct2_import`. (This module was
``finetune/export.py``.)

CTranslate2's own converter (``ctranslate2.converters.TransformersConverter``) does the work;
it reads a Hugging Face directory, so the model is first saved to a staging directory with
what the converter silently needs:

* tokenizer files (a ``WhisperTokenizerFast`` built from the original ``tokenizer.json``);
  without them the exported vocabulary is garbage and faster-whisper fails later with
  "<|startoftranscript|> token was not found";
* ``generation_config.json`` with the alignment heads, suppress tokens and language ids of
  the original CTranslate2 ``config.json`` (word timestamps and language detection use them).

The original ``tokenizer.json`` (and ``preprocessor_config.json`` when there is one) is then
copied into the export, so faster-whisper tokenizes exactly as with the original model.
The files are converted in a staging directory inside the output directory and renamed into
place one by one, model.bin last: an interrupted export never leaves a half-written model.
Last, the sha256 of every model file is recorded in ``malsori_checksums.json``, which every
later load verifies (a damaged file is an error, not a garbage transcript).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionsError, OutputError
from ..models import CHECKSUMS_FILE, write_checksums
from ..models import FINETUNE_INFO as INFO_FILE

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16", "int8_float32")
_COPIED = ("tokenizer.json", "preprocessor_config.json")


def save_hf_directory(
    model: WhisperForConditionalGeneration, source_dir: Path, directory: Path
) -> None:
    """Save ``model`` as a Hugging Face directory the converter can read, offline."""
    from transformers import WhisperTokenizer  # WhisperTokenizerFast is the same class in 5.x

    model.save_pretrained(directory)
    model.generation_config.save_pretrained(directory)
    tokenizer = WhisperTokenizer(tokenizer_file=str(source_dir / "tokenizer.json"))
    tokenizer.save_pretrained(directory)


def export_ct2(
    model: WhisperForConditionalGeneration,
    source_dir: str | Path,
    output_dir: str | Path,
    *,
    quantization: str = "float16",
    info: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a CTranslate2 model into ``output_dir`` (model.bin, config.json, vocabulary,
    tokenizer.json; other files there are left alone) from ``model``, whose tokenizer is
    ``source_dir``'s."""
    from ctranslate2.converters import TransformersConverter

    if quantization not in QUANTIZATIONS:
        raise OptionsError(
            f"quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}"
        )
    source, out = Path(source_dir), Path(output_dir)
    if (out / "model.bin").exists() and not overwrite:
        raise OutputError(f"{out} already holds a model (choose another output directory)")
    out.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the converter's shard bars say nothing useful here
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        hf_dir, staged = Path(tmp) / "hf", Path(tmp) / "ct2"
        was_training = model.training
        model.eval()  # type: ignore[no-untyped-call]
        save_hf_directory(model, source, hf_dir)
        model.train(was_training)
        TransformersConverter(str(hf_dir)).convert(str(staged), quantization=quantization)
        for name in _COPIED:
            if (source / name).is_file():
                shutil.copyfile(source / name, staged / name)
        (staged / INFO_FILE).write_text(
            json.dumps({"quantization": quantization, **(info or {})}, indent=2) + "\n",
            encoding="utf-8",
        )
        # Each file is renamed into place (atomic); model.bin goes last, so a directory
        # with a model.bin always has the config and vocabulary that belong to it. The old
        # checksums go first and the new ones are written last: an interrupted export leaves
        # an unverified model, never one whose checksums belong to other files.
        (out / CHECKSUMS_FILE).unlink(missing_ok=True)
        if (out / "model.bin").exists():
            (out / "model.bin").unlink()
        for path in sorted(staged.iterdir(), key=lambda p: p.name == "model.bin"):
            os.replace(path, out / path.name)
    write_checksums(out, created_by="malsori finetune")
    return out
