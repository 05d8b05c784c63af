"""Moved to finetune/recipe.py; this name is kept so that old imports still work."""

from __future__ import annotations

from .recipe import (
    CHECKPOINTS,
    REPORT,
    FinetuneConfig,
    FinetuneResult,
    WerResult,
    _check_output,
    _register,
    _validate,
    finetune,
    peak_rss_bytes,
    whisper_loss_step,
    word_error_rate,
)

__all__ = [
    "CHECKPOINTS",
    "REPORT",
    "FinetuneConfig",
    "FinetuneResult",
    "WerResult",
    "_check_output",
    "_register",
    "_validate",
    "finetune",
    "peak_rss_bytes",
    "whisper_loss_step",
    "word_error_rate",
]
