"""Report files that a command writes once at its end (``eval -o``/``--plot``, ``predict
-o``): checked before the work starts, so a long evaluation never ends in a refused or lost
write, and a report never lands on the command's own input or on a file it did not make.

Testers found ``eval -o m.tsv`` writing a Markdown report over the manifest it read,
``--plot r.md`` writing a PNG over the report, and ``-o nodir/r.md`` failing with a
traceback after the whole evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import OptionsError, OutputError


def same_file(a: Path, b: Path) -> bool:
    """Both exist and are one file (a hard link, a symlink, the same path)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(
    outputs: Sequence[tuple[str, str | Path]],
    inputs: Sequence[str | Path],
    *,
    overwrite: bool,
) -> None:
    """Refuse, before any work: an output that is one of ``inputs``; two outputs at one
    path; an output that is a folder; an existing file without ``overwrite``; a folder
    that cannot be made or written. A missing folder is made when the output is written
    (:func:`make_parent`), so a run refused later leaves none behind."""
    seen: dict[Path, str] = {}
    for flag, raw in outputs:
        path = Path(raw)
        where = path.resolve()
        if where in seen:
            raise OptionsError(f"{seen[where]} and {flag} are the same file ({raw})")
        seen[where] = flag
        for given in inputs:
            source = Path(given)
            if where == source.resolve() or same_file(path, source):
                raise OptionsError(
                    f"{flag} {raw} is the input {given}: the output would replace it; "
                    "give another file name"
                )
        if path.is_dir():
            raise OutputError(f"{flag} {raw} is a folder; give a file name")
        if os.path.lexists(path) and not overwrite:
            raise OutputError(
                f"{flag} {raw} exists; pass --overwrite to replace it, or give another name"
            )
        base = next(p for p in (path.parent.absolute(), *path.parent.absolute().parents)
                    if p.exists())  # fmt: skip
        if not base.is_dir():
            raise OutputError(f"{flag} {raw}: {base} is a file, not a folder")
        if not os.access(base, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {raw}: the folder {base} is not writable")


def make_parent(path: str | Path) -> None:
    """Make the folder an output checked by :func:`check_outputs` goes into."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder for {path}: {exc.strerror or exc}") from None
