"""What ``malsori transcribe -o DIR`` wrote into DIR, so that a rerun rewrites its own
results and nothing else.

``DIR/.malsori-transcribe.jsonl`` holds one line per written file: its name, the sha256 of
what was written and the input it came from. Before an input's files are written, each one
that already exists must be the unchanged result of the same input (same absolute path, or
``<stdin>``); a file malsori did not write (your own ``movie.srt``), one edited since, or
another input's transcript (``d1/x.wav`` then ``d2/x.wav`` into one folder) stops that
input with the reason, unless ``overwrite`` is asked for. The check and the write happen
under an exclusive ``flock`` of the ledger, so two processes writing into one folder at
once cannot both take the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ._atomic import output_error
from ._hashing import sha256_file
from .errors import OutputError

LEDGER = ".malsori-transcribe.jsonl"


def input_id(name: str, piped: bytes | None = None) -> str:
    """How an input is recorded: its absolute path; for audio read from a pipe (``-``,
    ``<(...)``), whose path says nothing, the sha256 of what was read."""
    if piped is not None:
        return f"<piped audio sha256:{hashlib.sha256(piped).hexdigest()[:16]}>"
    return str(Path(name).resolve())


class Ledger:
    """The ledger of one output folder (see the module docstring)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LEDGER
        self._torn = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, dict[str, str]]]:
        """Hold the folder's lock; yields the latest entry per file name."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise output_error(exc, self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read()
            entries: dict[str, dict[str, str]] = {}
            for line in data.splitlines():  # a torn or foreign line is skipped, never fatal
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    entry = json.loads(line.decode("utf-8"))
                    entries[str(entry["file"])] = entry
            self._torn = bool(data) and not data.endswith(b"\n")
            yield entries
        finally:
            os.close(fd)  # releases the lock

    def check(
        self, entries: dict[str, dict[str, str]], paths: list[Path], source: str, label: str
    ) -> None:
        """Raise :class:`OutputError` if writing ``paths`` for input ``source`` would replace
        something that is not this input's own unchanged result."""
        for path in paths:
            if not path.exists() and not path.is_symlink():
                continue
            entry = entries.get(path.name)
            hint = "move it away, choose another --output-dir, or pass --overwrite"
            if entry is None:
                raise OutputError(f"{path} exists and was not written by malsori; {hint}")
            if entry.get("input") != source:
                raise OutputError(
                    f"{path} holds the transcript of another input "
                    f"({_shown(entry.get('input', '?'))}), not of {label}; {hint}"
                )
            try:
                same = path.is_file() and sha256_file(path) == entry.get("sha256")
            except OSError as exc:
                raise OutputError(f"cannot read {path}: {exc.strerror or exc}") from exc
            if not same:
                raise OutputError(f"{path} was changed since malsori wrote it; {hint}")

    def record(self, paths: list[Path], source: str) -> None:
        """Append the files just written (call while :meth:`locked` is held)."""
        lines = []
        for path in paths:
            digest = sha256_file(path)
            entry = {"file": path.name, "sha256": digest, "input": source, "time": time.time()}
            lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if self._torn else "") + "".join(lines))  # after a torn line
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(
                f"the results were written, but listing them in {self.path} failed "
                f"({exc.strerror or exc}): a rerun will need --overwrite"
            ) from exc


def _shown(source: str) -> str:
    """An input as the message shows it: relative to the working folder when inside it."""
    with contextlib.suppress(ValueError):
        return str(Path(source).relative_to(Path.cwd()))
    return source


__all__ = ["LEDGER", "Ledger", "input_id"]
