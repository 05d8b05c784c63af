"""The exceptions malsori raises. Every user-facing failure is one of these, with a message
that says what went wrong and what to do about it; the CLI prints it as one line.

The tree (catch ``MalsoriError`` for all of them)::

    MalsoriError
    ├── AudioError              input is not usable audio (missing, empty, truncated...)
    ├── ModelNotFoundError      no model of that name or path; lists every place tried
    ├── ModelIntegrityError     a model file does not match its checksum
    ├── ModelLoadError          a model directory CTranslate2 cannot load
    │   └── ModelFormatError    model.bin / config / tokenizer malsori's own readers refuse
    ├── OptionsError            an invalid option (also a ValueError)
    ├── TranscriptionCancelled  should_stop() said stop (the server's cancel, timeout)
    ├── OutputError             a result file cannot be written
    │   └── NoSpaceError        ... because the disk (or quota, or a size limit) is full
    ├── ManifestError           a TSV manifest (eval, finetune) cannot be used as a whole
    ├── DataError               a CSV for training or prediction cannot be used
    ├── CheckpointError         a training checkpoint is missing, unreadable or too new
    ├── TrainingError           training diverged (NaN/inf); nothing was saved
    └── MissingExtraError       an optional dependency (an extra) is not installed

Modules that raised some of these before they lived here re-export them
(``malsori.evaluate.manifest.ManifestError``, ``malsori.train.regression.DataError``).
"""

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


class ModelFormatError(ModelLoadError):
    """malsori's own model readers (the fine-tuning import: model.bin, config.json,
    tokenizer.json) cannot use a model directory: truncated or unknown binary version,
    not a Whisper model, weights that do not fit the architecture."""


class OutputError(MalsoriError):
    """A result file could not be written (disk full, no permission, two inputs would write
    the same file...). No partial set of a file's formats is left behind."""


class NoSpaceError(OutputError):
    """The disk (or the file-size limit, or the quota) is full: a run stops new work."""


class TranscriptionCancelled(MalsoriError):
    """``should_stop()`` said stop: raised between two model calls of a transcription
    (encoder micro-batch, ``generate`` call), so a stop takes about one such call."""


class OptionsError(MalsoriError, ValueError):
    """An invalid decoding or engine option (unknown language, bad compute type...)."""


class CheckpointError(MalsoriError):
    """A training checkpoint is missing, unreadable, or in a format this version does not
    read (``fit(resume=...)``, ``malsori finetune --resume``)."""


class ManifestError(MalsoriError):
    """A manifest (TSV of path, language, reference) cannot be used as a whole: missing file,
    no header, missing columns, no usable rows. Single bad rows are reported, not raised."""


class DataError(MalsoriError):
    """A CSV cannot be used for training or prediction (the message says where and why)."""


class TrainingError(MalsoriError):
    """Training failed in a way more epochs cannot fix (the loss diverged to NaN/inf);
    nothing was saved."""


class MissingExtraError(MalsoriError):
    """An optional dependency is not installed; the message names the extra and the
    ``pip install`` command (raised by :func:`malsori._extras.require_extra`)."""
