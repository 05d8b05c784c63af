"""The evaluation sweep: every configuration (model x compute type x beam x batch) over
every manifest row, each utterance scored. (This module was ``evaluate/runner.py``; the
name ``runner`` now belongs to :mod:`malsori.batch.runner` alone.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ..engine import DEFAULT_COMPUTE_TYPE, EngineConfig
from ..errors import MalsoriError
from ..manifest import ManifestProblem, ManifestRow
from .metrics import Score, score


@dataclass(frozen=True)
class EvalConfig:
    model: str = "base"
    compute_type: str = DEFAULT_COMPUTE_TYPE
    beam_size: int = 0  # the product default: automatic (greedy, beam 5 for Korean)
    batch_size: int = 8  # the product default: malsori's pipeline; 1 = sequential
    device: str = "auto"
    threads: int | None = None

    @property
    def engine(self) -> EngineConfig:
        return EngineConfig(self.model, self.device, self.compute_type, self.threads)

    @property
    def label(self) -> str:
        beam = f"beam{self.beam_size}" if self.beam_size else "beam-auto"
        parts = [self.model, self.compute_type, beam]
        if self.batch_size == 1:
            parts.append("sequential")
        elif self.batch_size != 8:
            parts.append(f"batch{self.batch_size}")
        return " ".join(parts)


@dataclass
class Utterance:
    row: ManifestRow
    hypothesis: str
    score: Score
    duration: float
    processing_time: float


@dataclass
class ConfigResult:
    config: EvalConfig
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[ManifestProblem] = field(default_factory=list)
    load_time: float = 0.0

    def languages(self) -> list[str]:
        return sorted({u.row.language for u in self.utterances})

    def totals(self, language: str | None = None) -> dict[str, float]:
        """Corpus-level rates (total errors / total reference units), RTF and counts."""
        us = [u for u in self.utterances if language is None or u.row.language == language]
        ref_words = sum(u.score.ref_words for u in us)
        raw_ref = sum(u.score.raw_ref_words for u in us)
        ref_chars = sum(u.score.ref_chars for u in us)
        audio = sum(u.duration for u in us)
        proc = sum(u.processing_time for u in us)
        subs = sum(u.score.substitutions for u in us)
        ins = sum(u.score.insertions for u in us)
        dels = sum(u.score.deletions for u in us)
        return {
            "utterances": len(us),
            "ref_words": ref_words,
            "wer": (subs + ins + dels) / ref_words if ref_words else 0.0,
            "raw_wer": sum(u.score.raw_errors for u in us) / raw_ref if raw_ref else 0.0,
            "cer": sum(u.score.char_errors for u in us) / ref_chars if ref_chars else 0.0,
            "spacing": sum(u.score.space_errors for u in us) / ref_chars if ref_chars else 0.0,
            "substitutions": subs,
            "insertions": ins,
            "deletions": dels,
            "audio_s": audio,
            "processing_s": proc,
            "rtf": proc / audio if audio else 0.0,
        }


Progress = Callable[[EvalConfig, ManifestRow, Utterance | None], None]


def evaluate(
    rows: Iterable[ManifestRow],
    configs: Iterable[EvalConfig],
    *,
    progress: Progress | None = None,
) -> list[ConfigResult]:
    """Transcribe every row with every configuration (the language given from the manifest)."""
    from ..engine import load_model, transcribe
    from ..options import DecodeOptions

    rows = list(rows)
    results = []
    for cfg in configs:
        t0 = time.perf_counter()
        loaded = load_model(cfg.engine)
        # The report names the compute type used (``auto`` -> int8 on a CPU, float16 on CUDA)
        cfg = replace(cfg, compute_type=loaded.compute_type)
        result = ConfigResult(cfg, load_time=time.perf_counter() - t0)
        for row in rows:
            options = DecodeOptions(
                language=row.language,
                beam_size=cfg.beam_size,
                best_of=cfg.beam_size or 5,
                batch_size=cfg.batch_size,
            )
            try:  # an English-only model refuses other languages here (check_options)
                tr = transcribe(row.path, loaded, options=options)
            except MalsoriError as exc:
                result.skipped.append(ManifestProblem(row.line, str(exc)))
                if progress:
                    progress(cfg, row, None)
                continue
            utt = Utterance(
                row,
                tr.text,
                score(row.reference, tr.text, row.language),
                tr.duration,
                tr.processing_time or 0.0,
            )
            result.utterances.append(utt)
            if progress:
                progress(cfg, row, utt)
        results.append(result)
    return results
