"""Moved to finetune/ct2_import.py, the import half of the ct2_import/ct2_export pair;
this name is kept so that old imports still work."""

from __future__ import annotations

from .ct2_import import (
    DECODER_LAYER_MAP,
    ENCODER_LAYER_MAP,
    GLOBAL_MAP,
    Part,
    ct2_state_dict,
    generation_config,
    hf_config,
    load_tokenizer,
    load_whisper,
    mapping_rows,
    read_ct2_config,
)

__all__ = [
    "DECODER_LAYER_MAP",
    "ENCODER_LAYER_MAP",
    "GLOBAL_MAP",
    "Part",
    "ct2_state_dict",
    "generation_config",
    "hf_config",
    "load_tokenizer",
    "load_whisper",
    "mapping_rows",
    "read_ct2_config",
]
