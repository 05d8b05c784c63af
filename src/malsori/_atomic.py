"""Atomic file writes: write to a temporary file in the target directory, fsync, rename.

A reader (or a crash) never sees a half-written result file: the destination either keeps
its old content or gets the complete new one. :func:`atomic_write_many` extends that to a
set of files (one input's formats): every file is written and synced first, and only then
renamed into place, so a full disk leaves none of them rather than some.

Result files get the permissions any other tool's output gets (``0666 & ~umask``), not the
``0600`` of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from .errors import NoSpaceError, OutputError

#: errno values of ``os.link`` on a file system without hard links (vfat/exFAT say EPERM).
NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}
)
#: errno values that mean "the disk (or the file-size limit, or the quota) is full".
_NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _umask() -> int:
    """The process umask, read without changing it (Linux: /proc; elsewhere set+restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(exc: OSError, path: str | os.PathLike[str]) -> OutputError:
    """One clear line for a failed result write: 'no space left writing out/a.srt'."""
    if exc.errno == errno.EFBIG:  # ulimit -f, or the file system's own size limit
        return NoSpaceError(f"file too large writing {os.fspath(path)} (a file-size limit)")
    if exc.errno in _NO_SPACE:
        return NoSpaceError(f"no space left writing {os.fspath(path)}")
    return OutputError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}")


def _tmp_prefix(dest: Path) -> str:
    """``.<name>.`` cut to 200 bytes: a legal 250-byte name (82 Korean syllables) must not
    get a temporary name over the 255-byte limit."""
    name = os.fsencode(dest.name)[:200].decode("utf-8", "ignore")
    return f".{name}."


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: object) -> Iterator[IO]:  # type: ignore[type-arg]
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(dest), suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _keep_old(dest: Path) -> str | None:
    """A hard link to ``dest``'s current content under a temporary name (None when there is
    no old file, or the disk has no hard links): what a failed set is rolled back to."""
    if not os.path.lexists(dest):
        return None
    for _ in range(100):
        backup = str(dest.parent / f"{_tmp_prefix(dest)}{os.urandom(4).hex()}.old")
        try:
            os.link(dest, backup, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            return None
        return backup
    return None


def atomic_write_many(files: Sequence[tuple[Path, str | bytes]], *, replace: bool = True) -> None:
    """Write every ``(path, text or bytes)`` or none: all temporary files are written and synced
    before the first rename, and if a rename fails midway the files already renamed get
    their old content back (or are removed when they are new), so one input's formats never
    come from two different runs (on a disk without hard links, an old file cannot be kept
    aside: it keeps the new content); the same when the process is interrupted (Ctrl-C).
    Raises :class:`OutputError` (one line, naming the file) when a write fails, e.g. on a
    full disk; no temporary file is left behind. ``replace=False``: a file that exists (even
    one made a moment ago by another writer) is never replaced: each is created with a hard
    link, which fails if the name is taken, and the set is rolled back."""
    mode = 0o666 & ~_umask()
    staged: list[tuple[str, Path]] = []
    backups: dict[Path, str | None] = {}
    existed: dict[Path, bool] = {}
    renamed: list[Path] = []
    current: Path | None = None
    try:
        for dest, _ in files:  # checked before anything is written: all or none
            current = dest  # a name too long for the disk fails here already
            if dest.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(dest))
        for dest, text in files:
            current = dest
            fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(dest), suffix=".tmp", dir=dest.parent)
            staged.append((tmp, dest))
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8") if isinstance(text, str) else text)
                fh.flush()
                os.fsync(fh.fileno())
        existed = {dest: os.path.lexists(dest) for _, dest in staged}
        if not replace:
            for _, dest in staged:
                if existed[dest]:
                    raise FileExistsError(errno.EEXIST, "File exists", str(dest))
            for tmp, dest in staged:
                current = dest
                try:
                    os.link(tmp, dest)  # atomic: refused if the name was taken meanwhile
                except OSError as exc:
                    if exc.errno not in NO_HARD_LINKS:
                        raise
                    # a disk without hard links (FAT/exFAT, some FUSE and network mounts):
                    # the name is checked again right before the rename (a window of
                    # microseconds instead of none), rather than failing every write
                    if os.path.lexists(dest):
                        raise FileExistsError(errno.EEXIST, "File exists", str(dest)) from None
                    os.replace(tmp, dest)
                renamed.append(dest)
            return
        backups = {dest: _keep_old(dest) for _, dest in staged}
        for tmp, dest in staged:
            current = dest
            os.replace(tmp, dest)
            renamed.append(dest)
    except BaseException as exc:  # OSError, and Ctrl-C between two renames
        for dest in reversed(renamed):  # roll back: the set as it was before
            with contextlib.suppress(OSError):
                backup = backups.get(dest)
                if backup is not None:
                    os.replace(backup, dest)
                elif not existed.get(dest, True):
                    os.unlink(dest)  # new in this set
                # else: an old file that could not be linked (a disk without hard links)
                # keeps the new content rather than none
        if isinstance(exc, OSError):
            raise output_error(exc, current or "output") from exc
        raise
    finally:
        for tmp in [t for t, _ in staged] + [b for b in backups.values() if b is not None]:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def sweep_leftovers(dests: Iterable[Path]) -> int:
    """Remove the temporary files (``.name.XXXXXXXX.tmp``) and rollback links
    (``.name.XXXXXXXX.old``) that a process killed while writing ``dests`` left beside them.
    Only names of exactly that form, for exactly these destinations, are touched; the
    caller must be the only writer of these files (a batch run holds its job's lock).
    Returns how many were removed."""
    by_dir: dict[Path, set[str]] = {}
    for dest in dests:
        by_dir.setdefault(dest.parent, set()).add(_tmp_prefix(dest))
    pattern = re.compile(r"(.*\.)(?:[a-z0-9_]{8}\.tmp|[0-9a-f]{8}\.old)", re.DOTALL)
    removed = 0
    for folder, prefixes in by_dir.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None or match.group(1) not in prefixes:
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
    return removed
