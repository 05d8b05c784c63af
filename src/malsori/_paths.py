"""Where malsori keeps its own files. Both can be moved with environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Assembled bundled models and checksum records (``MALSORI_CACHE_DIR``)."""
    env = os.environ.get("MALSORI_CACHE_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("malsori"))


def models_dir() -> Path:
    """User model directories, one sub-directory per model name (``MALSORI_MODELS_DIR``).

    Put a CTranslate2 conversion of medium/large (or a fine-tuned export) at
    ``models_dir()/<name>/`` and ``--model <name>`` finds it.
    """
    env = os.environ.get("MALSORI_MODELS_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("malsori")) / "models"
