"""malsori (말소리, "speech sound"): offline speech-to-text on faster-whisper.

The public surface::

    from malsori import get_whisper, transcribe

    segments, info = get_whisper("base", compute_type="int8")("talk.wav", beam_size=5)
    result = transcribe("talk.wav", model="tiny.en", word_timestamps=True)
    print(result.text)

Importing malsori does not import torch (nor faster-whisper until a model is loaded).
"""

from __future__ import annotations

from .audio import SAMPLE_RATE, load_audio
from .engine import (
    EngineConfig,
    LoadedModel,
    default_cpu_threads,
    get_whisper,
    load_model,
    select_device,
    transcribe,
    unload_models,
)
from .errors import (
    AudioError,
    CheckpointError,
    DataError,
    MalsoriError,
    ManifestError,
    MissingExtraError,
    ModelFormatError,
    ModelIntegrityError,
    ModelLoadError,
    ModelNotFoundError,
    NoSpaceError,
    OptionsError,
    OutputError,
    TrainingError,
    TranscriptionCancelled,
)
from .models import MODEL_NAMES, ModelStatus, ResolvedModel, list_models, resolve_model
from .options import DecodeOptions
from .transcript import Segment, Transcript, Word
from .writers import FORMATS, WRITERS, write_transcript

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "MODEL_NAMES",
    "SAMPLE_RATE",
    "WRITERS",
    "AudioError",
    "CheckpointError",
    "DataError",
    "DecodeOptions",
    "EngineConfig",
    "LoadedModel",
    "MalsoriError",
    "ManifestError",
    "MissingExtraError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelStatus",
    "NoSpaceError",
    "OptionsError",
    "OutputError",
    "ResolvedModel",
    "Segment",
    "TrainingError",
    "Transcript",
    "TranscriptionCancelled",
    "Word",
    "__version__",
    "default_cpu_threads",
    "get_whisper",
    "list_models",
    "load_audio",
    "load_model",
    "resolve_model",
    "select_device",
    "transcribe",
    "unload_models",
    "write_transcript",
]
