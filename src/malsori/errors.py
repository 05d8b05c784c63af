"""The exceptions malsori raises. Every user-facing failure is one of these, with a message
that says what went wrong and what to do about it; the CLI prints it as one line."""

from __future__ import annotations


class MalsoriError(Exception):
    """Base class of every error malsori raises on purpose."""


class AudioError(MalsoriError):
    """The input could not be read as audio (missing, empty, not audio, truncated...)."""


class ModelNotFoundError(MalsoriError):
    """No usable model directory was found; the message lists every place tried."""


class ModelIntegrityError(MalsoriError):
    """A model file exists but its checksum does not match the pinned or recorded one (or
    model.bin is visibly truncated)."""


class ModelLoadError(MalsoriError):
    """A model directory was found but CTranslate2 could not load it (damaged or incomplete
    files, not a Whisper model, not enough memory...)."""


class OutputError(MalsoriError):
    """A result file could not be written (disk full, no permission, two inputs would write
    the same file...). No partial set of a file's formats is left behind."""


class NoSpaceError(OutputError):
    """The disk (or the file-size limit, or the quota) is full: a run stops new work."""


class OptionsError(MalsoriError, ValueError):
    """An invalid decoding or engine option (unknown language, bad compute type...)."""


class CheckpointError(MalsoriError):
    """A training checkpoint is missing, unreadable, or in a format this version does not
    read (``fit(resume=...)``, ``malsori finetune --resume``)."""
