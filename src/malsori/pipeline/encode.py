"""Stage 4: log-mel features and the encoder, in micro-batches.

On a CPU the int8 encoder costs about the same per window at any batch size (measured in
docs/pipeline.md, "4. Encoder") while memory grows by ~75 MB per extra window (8 heads
x 1500^2 attention scores each), so windows are encoded two at a time; only the decoder
gains from large batches. Features exist only for the windows of the current micro-batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .windows import Window

#: Windows per encoder call.
ENCODER_MICRO_BATCH = 2
N_FRAMES = 3000

Encoded = npt.NDArray[np.float32]  # (1500, d_model), one window


def window_features(feature_extractor: Any, window: Window) -> npt.NDArray[np.float32]:
    """Input: a window (<= 30 s). Output: its log-mel features, zero-padded to 3000
    frames (n_mels x 3000), exactly as faster-whisper's batched pipeline computes them."""
    from faster_whisper.audio import pad_or_trim

    feats = feature_extractor(window.samples)[..., :-1]
    return np.asarray(pad_or_trim(feats, N_FRAMES), dtype=np.float32)


def num_frames(window: Window) -> int:
    """Mel frames of real audio in ``window`` (what the aligner needs)."""
    return min(N_FRAMES, round(window.seconds * 100))


def encode_windows(
    whisper: Any,
    feature_extractor: Any,
    windows: list[Window],
    micro_batch: int = ENCODER_MICRO_BATCH,
) -> list[Encoded]:
    """Input: windows. Output: one encoder output (1500 x d_model float32, on the CPU) per
    window, computed ``micro_batch`` windows per ``Whisper.encode`` call."""
    import ctranslate2

    out: list[Encoded] = []
    to_cpu = whisper.device != "cpu"
    for i in range(0, len(windows), micro_batch):
        feats = np.stack(
            [window_features(feature_extractor, w) for w in windows[i : i + micro_batch]]
        )
        encoded = whisper.encode(ctranslate2.StorageView.from_array(feats), to_cpu=to_cpu)
        arr = np.array(encoded, dtype=np.float32)  # a copy: the StorageView is freed
        out.extend(arr[j] for j in range(arr.shape[0]))
    return out


def stack(encoded: list[Encoded]) -> Any:
    """Encoder outputs -> one ``StorageView`` batch (``generate``, ``align``, ...)."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(encoded)))
