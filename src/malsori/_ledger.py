"""What ``malsori transcribe -o DIR`` wrote into DIR, so that a rerun rewrites its own
results and nothing else.

``DIR/.malsori-transcribe.jsonl`` holds one line per written file: its name, the sha256 of
what was written and the input it came from. The lines are appended *before* the files are
renamed into place, so a run killed (or stopped with Ctrl-C) in between leaves files the
ledger knows. Before an input's files are written, each one that already exists must be a
result of the same input (same absolute path, or ``<stdin>``) as malsori wrote it at some
time; a file malsori did not write (your own ``movie.srt``), one edited since, another
input's transcript (``d1/x.wav`` then ``d2/x.wav`` into one folder), or a name that looks
the same as one already in DIR (``회의.txt`` in another Unicode normal form: one replaces
the other on a Mac or an SMB share) stops that input with the reason, unless
``overwrite`` is asked for (the look-alike name: always).

The check and the write happen under an exclusive ``flock`` of the ledger, so two
processes writing into one folder at once cannot both take the same name, and under a
lock of DIR itself, which a batch job holds for its whole run: nothing is written into a
folder while a batch job runs there (:class:`malsori.batch.jobs.RunLock`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ._atomic import _NO_SPACE, output_error
from ._dirlock import hold_folder
from ._hashing import sha256_file
from .errors import NoSpaceError, OutputError

LEDGER = ".malsori-transcribe.jsonl"
#: The lock file of a batch job (malsori.batch.jobs.LOCK_NAME), read for its pid.
_BATCH_LOCK = ".malsori-batch.lock"

#: File name -> every entry written for it, oldest first.
Entries = dict[str, list[dict[str, str]]]


def input_id(name: str, piped: bytes | None = None) -> str:
    """How an input is recorded: its absolute path; for audio read from a pipe (``-``,
    ``<(...)``), whose path says nothing, the sha256 of what was read."""
    if piped is not None:
        return f"<piped audio sha256:{hashlib.sha256(piped).hexdigest()[:16]}>"
    return str(Path(name).resolve())


def _batch_pid(out_dir: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        pid = (out_dir / _BATCH_LOCK).read_text(encoding="ascii").strip()
        if pid.isdigit():
            return f" (pid {pid})"
    return ""


def _folder_lock(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold a lock on the folder itself (a batch job holds it for its whole run; on a file
    system without locks on folders the ledger's own lock still holds)."""
    return hold_folder(out_dir, _running_message(out_dir, out_dir), create=False)


def _running_message(folder: Path, out_dir: Path) -> str:
    where = "" if folder == out_dir else f" (whose output folder {folder} holds {out_dir})"
    return (
        f"a batch job is running on {folder}{_batch_pid(folder)}{where}; nothing is written "
        "into its folder meanwhile: wait for it to end, or choose another --output-dir"
    )


def _batch_holds(folder: Path) -> bool:
    """Does a running batch job hold ``folder``'s run lock? (A shared lock taken for a
    moment: a batch starting at that moment retries.)"""
    lock = folder / _BATCH_LOCK
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)
    return False


def batch_running(out_dir: Path, *, above_only: bool = False) -> str | None:
    """Why nothing can be written into ``out_dir`` now: a batch job runs there, or in a
    folder above it (it writes into its subfolders); None when none does. Asked before any
    audio is decoded, and again (folders above) while writing."""
    try:
        here = out_dir.resolve()
    except OSError:
        return None
    folders = list(here.parents) if above_only else [here, *here.parents]
    for folder in folders:
        if _batch_holds(folder):
            return _running_message(folder, here)
    return None


def _lookalike(out_dir: Path, name: str) -> str | None:
    """A file in ``out_dir`` whose name differs from ``name`` only in Unicode normal
    form, or None."""
    key = unicodedata.normalize("NFC", name)
    if key == name and unicodedata.normalize("NFD", name) == name:
        return None  # no character that has two forms
    with contextlib.suppress(OSError):
        for entry in os.scandir(out_dir):
            if entry.name != name and unicodedata.normalize("NFC", entry.name) == key:
                with contextlib.suppress(OSError):
                    if os.path.samefile(entry.path, out_dir / name):
                        continue  # one file under two spellings (macOS normalises names)
                return entry.name
    return None


class Ledger:
    """The ledger of one output folder (see the module docstring)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LEDGER
        self._torn = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[Entries]:
        """Hold the folder's locks; yields every entry per file name (oldest first)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise output_error(exc, self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read()
            entries: Entries = {}
            for line in data.splitlines():  # a torn or foreign line is skipped, never fatal
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    entry = json.loads(line.decode("utf-8"))
                    entries.setdefault(str(entry["file"]), []).append(entry)
            self._torn = bool(data) and not data.endswith(b"\n")
            with _folder_lock(self.path.parent):
                above = batch_running(self.path.parent, above_only=True)
                if above is not None:  # a batch job writes into the folders below its own
                    raise OutputError(above)
                yield entries
        finally:
            os.close(fd)  # releases the lock

    def check(
        self, entries: Entries, paths: list[Path], source: str, label: str, overwrite: bool
    ) -> None:
        """Raise :class:`OutputError` if writing ``paths`` for input ``source`` would replace
        something that is not one of this input's own results as malsori wrote it (any
        ``overwrite``: only a name that looks the same as another file's)."""
        for path in paths:
            twin = _lookalike(path.parent, path.name)
            if twin is not None:
                raise OutputError(
                    f"{path} would look the same as {path.parent / twin}, already there (the "
                    "names differ only in Unicode normal form, and one replaces the other on "
                    "a Mac or a Windows share); rename the input or choose another --output-dir"
                )
            if path.is_dir() and not path.is_symlink():  # --overwrite cannot help
                raise OutputError(
                    f"{path} is a folder, where this output would go; move it away or choose "
                    "another --output-dir"
                )
            if overwrite or (not path.exists() and not path.is_symlink()):
                continue
            written = entries.get(path.name)
            hint = "move it away, choose another --output-dir, or pass --overwrite"
            if not written:
                raise OutputError(f"{path} exists and was not written by malsori; {hint}")
            try:
                digest = sha256_file(path) if path.is_file() else None
            except OSError as exc:
                raise OutputError(f"cannot read {path}: {exc.strerror or exc}") from exc
            owners = [e.get("input") for e in written if e.get("sha256") == digest]
            if source in owners:
                continue  # this input's result, as malsori wrote it (at some time)
            if owners or written[-1].get("input") != source:
                other = owners[-1] if owners else written[-1].get("input", "?")
                raise OutputError(
                    f"{path} holds the transcript of another input ({_shown(str(other))}), "
                    f"not of {label}; {hint}"
                )
            raise OutputError(f"{path} was changed since malsori wrote it; {hint}")

    def _written(self, source: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """The sha256s listed per file name: those written for ``source``, and those written
        for other inputs (empty when the list cannot be read)."""
        mine: dict[str, set[str]] = {}
        others: dict[str, set[str]] = {}
        with contextlib.suppress(OSError, UnicodeDecodeError), open(self.path, "rb") as fh:
            for line in fh.read().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    entry = json.loads(line.decode("utf-8"))
                    into = mine if entry.get("input") == source else others
                    into.setdefault(str(entry["file"]), set()).add(str(entry["sha256"]))
        return mine, others

    def own_others(
        self,
        stem: str,
        source: str,
        formats: Sequence[str],
        suffixes: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The formats besides ``formats`` that ``DIR/<stem><suffix>`` holds as malsori
        wrote it for ``source`` (an earlier run's, maybe with another model or settings):
        named in a note, never rewritten unasked (they may hold what this run does not:
        speakers, a larger model's text). ``suffixes``: format -> suffix (transcript
        formats by default; diarize's are .rttm and .speakers.json)."""
        from .writers import FORMATS

        if suffixes is None:
            suffixes = {fmt: f".{fmt}" for fmt in FORMATS}
        hashes, _ = self._written(source)
        kept = []
        for fmt, suffix in suffixes.items():
            path = self.path.parent / f"{stem}{suffix}"
            if fmt in formats or path.name not in hashes or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                if sha256_file(path) in hashes[path.name]:
                    kept.append(fmt)
        return kept

    def under_other_names(self, stem: str, source: str) -> list[str]:
        """Files malsori wrote for ``source`` under another stem than ``stem`` (its name gained
        or lost the extension since: ``talk.txt`` before ``talk.mp3`` was put beside
        ``talk.wav``), each marked ``(edited since)`` when it no longer is as written (a
        corrected transcript matters most): named in a note, never moved or deleted."""
        from .writers import FORMATS

        hashes, others = self._written(source)
        suffixes = (".speakers.json", ".rttm", *(f".{fmt}" for fmt in FORMATS))
        found = []
        for name, digests in sorted(hashes.items()):
            path = self.path.parent / name
            suffix = next((s for s in suffixes if name.endswith(s)), None)
            if suffix is None or name[: -len(suffix)] == stem or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                now = sha256_file(path)
                if now in others.get(name, set()) and now not in digests:
                    continue  # another input's transcript took the name since
                found.append(name if now in digests else f"{name} (edited since)")
        return found

    def record(self, files: Sequence[tuple[Path, str]], source: str) -> None:
        """Append the files about to be written, ``(path, text)``, before they are renamed
        into place (call while :meth:`locked` is held)."""
        lines = []
        for path, text in files:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            entry = {"file": path.name, "sha256": digest, "input": source, "time": time.time()}
            lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if self._torn else "") + "".join(lines))  # after a torn line
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            if exc.errno in _NO_SPACE:  # stops the run, as any full disk does
                what = (
                    "file too large (a file-size limit)"
                    if exc.errno == errno.EFBIG
                    else ("no space left")
                )
                raise NoSpaceError(f"{what} writing {self.path}; nothing was written") from exc
            raise OutputError(
                f"cannot list the results in {self.path} ({exc.strerror or exc}); nothing "
                "was written"
            ) from exc
        self._torn = False


def _shown(source: str) -> str:
    """An input as the message shows it: relative to the working folder when inside it."""
    with contextlib.suppress(ValueError):
        return str(Path(source).relative_to(Path.cwd()))
    return source


__all__ = ["LEDGER", "Ledger", "batch_running", "input_id"]
