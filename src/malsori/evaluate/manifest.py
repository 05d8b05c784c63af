"""Moved to :mod:`malsori.manifest` (shared by evaluate and finetune); kept so that old
imports still work."""

from __future__ import annotations

from ..manifest import (
    OPTIONAL,
    REQUIRED,
    ManifestError,
    ManifestProblem,
    ManifestRow,
    read_manifest,
)

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "ManifestError",
    "ManifestProblem",
    "ManifestRow",
    "read_manifest",
]
