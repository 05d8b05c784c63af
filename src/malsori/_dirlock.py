"""An exclusive lock on an output folder for the length of a run (``train regression``,
``finetune``, and ``transcribe -o`` while it writes: :mod:`malsori._ledger`): a second run
into the same folder is refused at once instead of both saying "saved" over each other's
files. ``flock`` on the folder itself, released by the kernel when the process ends (also
on kill -9)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ._atomic import output_error
from .errors import OutputError


@contextlib.contextmanager
def hold_folder(folder: Path, busy: str, *, create: bool = True) -> Iterator[None]:
    """Hold ``folder`` (made first with ``create``); :class:`OutputError` ``busy`` when
    another process holds it. The folders this call made are removed again if the block
    fails while they are still empty. On a file system without locks on folders the block
    runs unlocked."""
    created = []  # the folders this call makes, deepest first
    for parent in (folder, *folder.parents) if create else ():
        if parent.exists():
            break
        created.append(parent)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise output_error(exc, folder) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(busy) from None
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                raise output_error(exc, folder) from exc
        try:
            yield
        except BaseException:
            for made in created:  # each only when still empty
                try:
                    made.rmdir()
                except OSError:
                    break
            raise
    finally:
        os.close(fd)
