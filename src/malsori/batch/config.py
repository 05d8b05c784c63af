"""What a batch job asks for: :class:`BatchConfig`, and the request record kept per file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import DEFAULT_COMPUTE_TYPE, EngineConfig


@dataclass(frozen=True)
class BatchConfig:
    """One batch run. ``options`` are :class:`malsori.DecodeOptions` fields; ``model_key``
    is the resolved model (filled by the runner, recorded per file); ``names`` maps each
    input to its output base (see :mod:`malsori.batch.naming`), filled by the runner."""

    input_dir: str
    output_dir: str
    model: str = "base"
    compute_type: str = DEFAULT_COMPUTE_TYPE
    device: str = "auto"
    threads: int | None = None
    formats: tuple[str, ...] = ("txt", "srt", "vtt", "json", "tsv")
    options: dict[str, Any] = field(default_factory=dict)
    subtitles: dict[str, Any] = field(default_factory=dict)  # SubtitleOptions fields
    model_key: str | None = None
    #: sha256 of the model's model.bin (filled by the runner, recorded per file)
    model_sha256: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    #: ``--diarize``: the speaker-count fields of :class:`malsori.diarize.DiarizeOptions`
    #: that were given ({} for an estimated count; None: no speakers)
    speakers: dict[str, Any] | None = None
    #: Formats a redone file writes besides ``formats``: those of its earlier outputs that
    #: were not asked this time and are still as malsori wrote them, so that no output of an
    #: older request is left contradicting the new one (filled by the runner; not part of
    #: the request).
    also: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Output paths (relative to OUT) of this run's files that exist and may be replaced,
    #: with their size and sha256 when the run checked them: a worker writes over one only
    #: if it is still exactly so, and over no other existing file (filled by the runner).
    replaceable: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def engine(self) -> EngineConfig:
        return EngineConfig(self.model, self.device, self.compute_type, self.threads)

    def request(self) -> dict[str, Any]:
        """What is recorded with each done file and compared on the next run (as JSON
        gives it back: tuples become lists)."""
        request = {
            "model": self.model_key or self.model,
            "compute_type": self.compute_type,
            "formats": list(self.formats),
            "options": dict(self.options),
        }
        if self.model_sha256:
            request["model_sha256"] = self.model_sha256
        if any(v not in (None, False) for v in self.subtitles.values()):
            request["subtitles"] = dict(self.subtitles)
        if self.speakers is not None:  # a changed diarization request re-decodes the file
            request["speakers"] = dict(self.speakers)
        loaded: dict[str, Any] = json.loads(json.dumps(request))
        return loaded

    def options_for(self, rel: str) -> Any:
        """The :class:`malsori.DecodeOptions` ``rel`` is decoded with: this run's, with word
        timings when any format it is written in (kept ones too) is a subtitle format."""
        from ..options import DecodeOptions
        from ..writers import options_for_formats

        return options_for_formats(DecodeOptions(**self.options), self.formats_for(rel))

    def request_for(self, rel: str) -> dict[str, Any]:
        """What is recorded with ``rel`` once done: the request, with the formats it was
        written in (kept ones too) and the options it was decoded with. A later run asking
        for one of those formats, or for fewer, redoes nothing."""
        request = self.request()
        request["formats"] = list(self.formats_for(rel))
        if self.options_for(rel).word_timestamps:
            request["options"]["word_timestamps"] = True
        return request

    def output_base(self, rel: str) -> Path:
        """``OUT/<base>``: add ``.<format>`` for each output file."""
        return Path(self.output_dir) / self.names.get(rel, str(Path(rel).with_suffix("")))

    def formats_for(self, rel: str) -> tuple[str, ...]:
        """The formats ``rel`` is written in: those asked, then those kept up to date."""
        return self.formats + tuple(f for f in self.also.get(rel, ()) if f not in self.formats)

    def expected_outputs(self, rel: str) -> list[str]:
        """The outputs of ``rel`` relative to OUT, one per format."""
        base = self.names.get(rel, str(Path(rel).with_suffix("")))
        return [f"{base}.{fmt}" for fmt in self.formats_for(rel)]
