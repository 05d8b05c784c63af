"""malsori's own long-form decoding pipeline over CTranslate2's Whisper and faster-whisper's
parts (Silero VAD, feature extractor, tokenizer). One module per stage; see
docs/pipeline.md and :mod:`malsori.pipeline.run`."""

from __future__ import annotations

from .fallback import Thresholds
from .run import LANGUAGE_BEAMS, Pipeline, PipelineConfig, PipelineState

__all__ = ["LANGUAGE_BEAMS", "Pipeline", "PipelineConfig", "PipelineState", "Thresholds"]
