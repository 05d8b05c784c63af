"""Stage 4: log-mel features and the encoder, one window per call.

On a CPU the int8 encoder is fastest one window per call (measured in docs/pipeline.md,
"4. Encoder") while memory grows by ~75 MB per extra window in a call (8 heads x 1500^2
attention scores each); only the decoder gains from large batches (and from calls side
by side, :mod:`.parallel`). Features exist only for the window being encoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .windows import Window

#: Windows per encoder call.
ENCODER_MICRO_BATCH = 1
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
    window, computed ``micro_batch`` windows per ``Whisper.encode`` call, one call at a
    time (two side by side on a two-worker model are ~4% faster and cost ~30 MB more peak
    memory, which the pipeline's 600 MB budget does not have)."""
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
