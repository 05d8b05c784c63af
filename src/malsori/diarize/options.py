"""Diarization options (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionsError


@dataclass(frozen=True)
class DiarizeOptions:
    """Speaker-count constraints and the pipeline's tuned settings (docs/diarization.md)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: cosine distance below which clusters merge (tuned on the dev set: docs/benchmarks.md)
    threshold: float = 0.6
    #: seconds between segmentation windows
    step: float = 2.5
    #: single-speaker speech is embedded in chunks of at most / at least this many seconds
    max_chunk: float = 2.0
    min_chunk: float = 0.5
    #: chunks of at least this many seconds make the clusters (shorter ones join them)
    min_embed_speech: float = 1.0
    #: clusters with less speech than this fraction of the largest join their nearest one
    min_cluster_share: float = 0.2
    min_gap: float = 0.1
    min_turn: float = 0.05
    batch_size: int = 16

    def check(self) -> None:
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OptionsError(f"{name.replace('_', '-')} must be at least 1, got {value}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise OptionsError(
                f"min-speakers ({self.min_speakers}) is more than max-speakers "
                f"({self.max_speakers})"
            )


__all__ = ["DiarizeOptions"]
