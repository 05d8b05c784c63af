"""Speech start and stop on a live stream: Silero VAD (faster-whisper's copy) frame by frame
(32 ms), with the thresholds and the pause length of OpenAI's ``server_vad``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE

__all__ = ["FRAME", "SpeechDetector", "TurnDetection"]

FRAME = 512  #: samples per Silero frame at 16 kHz
_CONTEXT = 64


@dataclass(frozen=True)
class TurnDetection:
    """OpenAI's ``server_vad`` settings (same names and defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    #: Speech shorter than this never starts an utterance (a click, a cough).
    min_speech_ms: int = 160


class SpeechDetector:
    """``frame(samples)`` -> "start", "stop" or None. Silero's recurrent state and the
    64-sample context carry over from frame to frame, as in one long call."""

    def __init__(self, settings: TurnDetection | None = None) -> None:
        from faster_whisper.vad import get_vad_model

        self.settings = settings or TurnDetection()
        self._model: Any = get_vad_model()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self.speaking = False
        self._run = 0  # frames in a row on the other side of the threshold

    def probabilities(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Speech probability of each 512-sample row of ``frames``."""
        n = frames.shape[0]
        contexts = np.empty((n, _CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -_CONTEXT:]
        self._context = frames[-1, -_CONTEXT:].copy()
        batch = np.concatenate([contexts, frames], axis=1)
        out, self._h, self._c = self._model.session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def update(self, probability: float) -> str | None:
        s = self.settings
        if not self.speaking:
            self._run = self._run + 1 if probability >= s.threshold else 0
            if self._run * FRAME * 1000 >= s.min_speech_ms * SAMPLE_RATE:
                self.speaking, self._run = True, 0
                return "start"
        else:
            self._run = self._run + 1 if probability < s.threshold - 0.15 else 0
            if self._run * FRAME * 1000 >= s.silence_duration_ms * SAMPLE_RATE:
                self.speaking, self._run = False, 0
                return "stop"
        return None

    def end_turn(self) -> None:
        """The turn was ended from outside (a commit): speech must start again (for
        ``min_speech_ms``) before the next "start"; Silero's state carries on."""
        self.speaking, self._run = False, 0

    @property
    def run_frames(self) -> int:
        """Frames of the current run (speech before a start, silence before a stop)."""
        return self._run
