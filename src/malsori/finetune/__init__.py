"""malsori.finetune: fine-tune Whisper in PyTorch, serve the result with faster-whisper.

CTranslate2 model.bin -> ``WhisperForConditionalGeneration`` (:func:`load_whisper`) ->
the five-step loop of :func:`malsori.train.fit` (:func:`finetune`) -> CTranslate2 again
(:func:`export_ct2`, CTranslate2's own converter). Requires the ``train`` extra
(torch and transformers).
"""

from __future__ import annotations

from .ct2_export import QUANTIZATIONS, export_ct2
from .ct2_import import load_whisper, mapping_rows
from .data import Collator, SpeechDataset, WhisperTokens, load_examples, log_mel
from .recipe import FinetuneConfig, FinetuneResult, finetune, whisper_loss_step

__all__ = [
    "QUANTIZATIONS",
    "Collator",
    "FinetuneConfig",
    "FinetuneResult",
    "SpeechDataset",
    "WhisperTokens",
    "export_ct2",
    "finetune",
    "load_examples",
    "load_whisper",
    "log_mel",
    "mapping_rows",
    "whisper_loss_step",
]
