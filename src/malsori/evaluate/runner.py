"""Moved to evaluate/sweep.py; this name is kept so that old imports still work."""

from __future__ import annotations

from .sweep import (
    ConfigResult,
    EvalConfig,
    Progress,
    Utterance,
    evaluate,
)

__all__ = [
    "ConfigResult",
    "EvalConfig",
    "Progress",
    "Utterance",
    "evaluate",
]
