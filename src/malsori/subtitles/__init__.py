"""Subtitle cues people can read: the rules (:mod:`.rules`), the cue builder
(:mod:`.cues`) and the linter (:mod:`.lint`). docs/subtitles.md explains the numbers."""

from __future__ import annotations

from .cues import Cue, build_cues, karaoke
from .rules import LanguageRules, Limits, SubtitleOptions, rules_for

__all__ = [
    "Cue",
    "LanguageRules",
    "Limits",
    "SubtitleOptions",
    "build_cues",
    "karaoke",
    "rules_for",
]
