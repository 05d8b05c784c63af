"""The ``malsori`` command: a thin argparse front over the library, one module per command.

Every command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a ``run(args) -> int`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import logging
import os
import sys
from collections.abc import Sequence

from ..errors import MalsoriError
from . import batch as batch_cmd
from . import diarize as diarize_cmd
from . import eval as eval_cmd
from . import finetune as finetune_cmd
from . import live as live_cmd
from . import models as models_cmd
from . import predict as predict_cmd
from . import serve as serve_cmd
from . import subtitles as subtitles_cmd
from . import train as train_cmd
from . import transcribe as transcribe_cmd

COMMANDS = (
    transcribe_cmd,
    live_cmd,
    batch_cmd,
    diarize_cmd,
    models_cmd,
    eval_cmd,
    serve_cmd,
    train_cmd,
    predict_cmd,
    finetune_cmd,
    subtitles_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="malsori",
        description="Offline speech-to-text on faster-whisper (CTranslate2).",
    )
    parser.add_argument("--version", action="version", version=f"malsori {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``malsori ... | head -1``): exit quietly, as ``cat`` does.

    Python's documented recipe: point stdout at /dev/null so the interpreter's final flush
    cannot raise again; the status is 128 + SIGPIPE, what a shell reports for such tools."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


class _ClosedStdout(io.TextIOBase):
    """``sys.stdout`` when the program was started with it closed (``>&-``): writing to it
    is an error (said in one line, exit 1), as for any other tool; flushing it is not."""

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def _guard_standard_streams() -> None:
    """Started with stdin, stdout or stderr closed (``2>&-``): each is reopened on
    /dev/null, so that no file malsori opens gets its number (a C library's log line, or a
    message, would land in a transcript), and Python's ``sys.stderr`` is not None (progress
    bars and messages then go nowhere: the work is still done and written)."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:  # the lowest free number first: os.open returns it
        got = os.open(os.devnull, os.O_RDWR)
        if got != fd:
            os.dup2(got, fd)
            os.close(got)
    if sys.stdin is None or 0 in closed:  # reading it gives nothing: "input is empty"
        sys.stdin = open(os.devnull)  # noqa: SIM115 (for the life of the process)
    if sys.stderr is None or 2 in closed:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    if sys.stdout is None or 1 in closed:
        sys.stdout = _ClosedStdout()


def main(argv: Sequence[str] | None = None) -> int:
    _guard_standard_streams()
    parser = build_parser()
    args = parser.parse_args(batch_cmd.normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="malsori: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc = int(args.func(args))
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as exc:
        if exc.filename is not None:
            raise  # not a write to stdout: a real bug, keep its traceback
        # stdout on a full disk, /dev/full, or past `ulimit -f`: say so, never exit 0
        print(f"malsori: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except MalsoriError as exc:
        print(f"malsori: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("malsori: interrupted", file=sys.stderr)
        return 130
