"""malsori.evaluate: WER/CER of one or more configurations on a TSV manifest (needs the
``eval`` extra: jiwer, whisper-normalizer, matplotlib)."""

from __future__ import annotations

from ..manifest import ManifestError, ManifestProblem, ManifestRow, read_manifest
from .metrics import Score, normalize, score
from .report import plot_speed_vs_error, write_report
from .sweep import ConfigResult, EvalConfig, evaluate

__all__ = [
    "ConfigResult",
    "EvalConfig",
    "ManifestError",
    "ManifestProblem",
    "ManifestRow",
    "Score",
    "evaluate",
    "normalize",
    "plot_speed_vs_error",
    "read_manifest",
    "score",
    "write_report",
]
