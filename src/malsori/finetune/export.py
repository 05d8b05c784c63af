"""Moved to finetune/ct2_export.py, the export half of the ct2_import/ct2_export pair;
this name is kept so that old imports still work."""

from __future__ import annotations

from .ct2_export import (
    QUANTIZATIONS,
    export_ct2,
    save_hf_directory,
)

__all__ = [
    "QUANTIZATIONS",
    "export_ct2",
    "save_hf_directory",
]
