"""Diarization options (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionsError

#: The most speakers that may be asked for (num/min/max): more than the pipeline can tell
#: apart in any recording it is meant for (docs/diarization.md).
MAX_SPEAKERS = 32


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
    #: added to the distance of two chunks that one segmentation window hears as two
    #: different local speakers (a soft cannot-link; 0 turns it off)
    cannot_link: float = 0.2
    min_gap: float = 0.1
    min_turn: float = 0.05
    batch_size: int = 16

    def problem(self) -> tuple[str, str] | None:
        """The first speaker-count option that cannot work, as ``(field name, message)``
        (the message names the CLI flag), or None."""
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            flag = name.replace("_", "-")
            if value is not None and value < 1:
                return name, f"{flag} must be at least 1, got {value}"
            if value is not None and value > MAX_SPEAKERS:
                return name, f"{flag} must be at most {MAX_SPEAKERS}, got {value}"
        lo, hi, num = self.min_speakers, self.max_speakers, self.num_speakers
        if lo and hi and lo > hi:
            return "min_speakers", f"min-speakers ({lo}) is more than max-speakers ({hi})"
        if num and hi and num > hi:
            return "num_speakers", f"num-speakers ({num}) is more than max-speakers ({hi})"
        if num and lo and num < lo:
            return "num_speakers", f"num-speakers ({num}) is less than min-speakers ({lo})"
        return None

    def check(self) -> None:
        """Raise :class:`OptionsError` for speaker-count options that cannot work."""
        found = self.problem()
        if found is not None:
            raise OptionsError(found[1])


__all__ = ["MAX_SPEAKERS", "DiarizeOptions"]
