"""A clear error when a command needs the ``train`` extra and torch is not installed."""

from __future__ import annotations

import importlib.util

from ..errors import MalsoriError


def require_torch(command: str) -> None:
    if importlib.util.find_spec("torch") is None:
        raise MalsoriError(
            f"'malsori {command}' needs PyTorch: pip install -e '.[train]' (torch==2.13.0)"
        )
