"""Live transcription: LocalAgreement-2 over a growing buffer, Silero VAD for speech start
and stop (docs/live.md). Used by ``malsori live``, the server's ``/v1/realtime`` WebSocket
and the page's Record button."""

from __future__ import annotations

from .policy import HypothesisBuffer, TimedWord, cut_repetition
from .runner import run_live
from .session import (
    Cleared,
    LiveError,
    LiveEvent,
    LiveOptions,
    LiveSession,
    LiveStats,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    UtteranceDone,
)
from .sources import FileSource, LiveSource, MicSource, StdinSource, open_source, pcm16_to_float
from .vad import SpeechDetector, TurnDetection

__all__ = [
    "Cleared",
    "FileSource",
    "HypothesisBuffer",
    "LiveError",
    "LiveEvent",
    "LiveOptions",
    "LiveSession",
    "LiveSource",
    "LiveStats",
    "MicSource",
    "SpeechDetector",
    "SpeechStarted",
    "SpeechStopped",
    "StdinSource",
    "TextDelta",
    "TimedWord",
    "TurnDetection",
    "UtteranceDone",
    "cut_repetition",
    "open_source",
    "pcm16_to_float",
    "run_live",
]
