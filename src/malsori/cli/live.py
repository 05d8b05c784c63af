"""``malsori live``: transcribe as people speak, from the microphone, a file or stream URL
(read at real-time pace), or raw PCM16 16 kHz mono on stdin (``--input -``).

Confirmed text is printed as it becomes final, one line per utterance; on a terminal the
unconfirmed rest is shown dimmed after it and replaced in place. Ctrl-C (or the end of the
input) stops; with ``-o DIR`` the session's transcript is then written in the usual formats.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .._ledger import batch_running
from ..engine import check_options, load_model
from ..errors import AudioError, MalsoriError, OptionsError, OutputError
from ..live import LiveEvent, LiveOptions, LiveSession, SpeechStopped, TextDelta, open_source
from ..live import run_live as run_session
from ..live.runner import Abandoned
from ..options import normalize_language
from ..transcript import Transcript
from ..writers import FORMATS, expand_formats, output_paths, write_transcript
from ._args import add_model_arguments, description
from ._rescue import note as _note
from ._rescue import rescue

#: Signals that end a session as Ctrl-C does (the transcript is written first).
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "live",
        help="live transcription from a microphone, a stream or stdin",
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--input",
        "-i",
        default=None,
        metavar="DEVICE|FILE|URL|-",
        help="a microphone (number or name; `python -m sounddevice` lists them), a file or "
        "URL FFmpeg reads (at real-time pace), or - for raw PCM16 16 kHz mono on stdin "
        "[default: the default microphone]",
    )
    p.add_argument(
        "--language", default="auto", help="en, ko, ... or auto (detected for each utterance)"
    )
    p.add_argument(
        "--beam-size",
        type=int,
        default=0,
        metavar="N",
        help="1 = greedy everywhere (least work); 0 = automatic: streaming decodes greedy, "
        "each utterance's final pass beam 5 for Korean, else greedy [0]",
    )
    p.add_argument("--initial-prompt", default=None, metavar="TEXT", help="names, vocabulary")
    p.add_argument(
        "--output-dir", "-o", default=None, metavar="DIR", help="write the transcript here"
    )
    p.add_argument(
        "--format",
        "-f",
        default=None,
        help=f"formats written with -o: {', '.join(FORMATS)}, all or a comma list [all]",
    )
    p.add_argument(
        "--name",
        default=None,
        help="file stem for -o (a plain name; an existing file is never replaced: -2, -3, ... "
        "is added) [input stem or live-DATE-TIME]",
    )
    add_model_arguments(p)
    p.set_defaults(func=run)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class Printer:
    """Confirmed text as it arrives; on a terminal the partial shown dimmed and replaced."""

    def __init__(self, out: TextIO, on_error: Callable[[], None] | None = None) -> None:
        self.out = out
        self.on_error = on_error  # called once, after the first failed write
        self.tty = out.isatty()
        self.column = 0
        self.shown = 0  # width of the partial on screen
        self.lock = threading.Lock()
        self.error: OSError | None = None  # the first failed write to ``out``

    def __call__(self, event: LiveEvent) -> None:
        with self.lock:
            if self.error is not None:
                return
            try:
                self._show(event)
            except OSError as exc:  # a full disk, `ulimit -f`, a closed terminal (SIGHUP)
                self.error = exc  # the exit says so
                if self.on_error is not None:
                    self.on_error()

    def _show(self, event: LiveEvent) -> None:
        if isinstance(event, TextDelta):
            self._erase()
            text = event.text.lstrip() if self.column == 0 else event.text
            self._write(text)
            if self.tty and event.partial:
                self._partial(event.partial)
        elif isinstance(event, SpeechStopped) and (self.column or self.shown):
            # the utterance's streamed text ends here (its final pass, for -o, may come
            # later, after the next utterance's first words)
            self._erase()
            self.out.write("\n")
            self.column = 0
        self.out.flush()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.column += _width(text)

    def _erase(self) -> None:
        if self.shown:
            self.out.write(f"\x1b[{self.shown}D\x1b[K")
            self.shown = 0

    def _partial(self, partial: str) -> None:
        import shutil

        columns = shutil.get_terminal_size().columns
        room = columns - 1 - self.column % columns
        text = partial.lstrip() if self.column == 0 else partial
        clipped = ""
        for ch in text:
            if _width(clipped + ch) > room:
                break
            clipped += ch
        if clipped:
            self.out.write(f"\x1b[2m{clipped}\x1b[0m")
            self.shown = _width(clipped)


def _check_name(name: str) -> None:
    if (
        not name.strip()
        or name in (".", "..")
        or ".." in name
        or any(sep in name for sep in ("/", "\\", os.sep))
    ):
        raise OptionsError(
            f"--name {name!r}: give a plain file name (no path separators, no '..'); "
            "the directory is -o"
        )


def _prepare_dir(out_dir: Path) -> None:
    """Create -o now (before any audio) and check it can be written to: one line if not."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"-o {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"-o {out_dir}: cannot create the directory ({exc.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"-o {out_dir}: the directory is not writable")


def _check_name_fits(out_dir: Path, stem: str, formats: list[str], given: bool) -> None:
    """Before any audio: every file the transcript may need (``STEM-999.EXT`` at worst)
    has a name the file system takes; a session must not end in "File name too long"."""
    try:
        name_max = os.pathconf(out_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    longest = max(len(f"{stem}-999.{fmt}".encode()) for fmt in formats)
    if longest > name_max:
        what = "--name" if given else "the input's name (the file stem)"
        raise OptionsError(
            f"{what} is too long for a file name in {out_dir}: {longest} bytes with "
            f"'-999' and the extension, at most {name_max}; give a shorter --name"
        )


def _reserve(out_dir: Path, stem: str, formats: list[str]) -> tuple[str, list[Path]]:
    """A stem none of whose files exist yet, claimed by creating them exclusively (empty
    until the writers replace them atomically): two runs never overwrite each other's
    files, and no existing file is replaced (``stem-2``, ``stem-3``, ... instead), nor
    written beside one whose name looks the same (the same letters in another Unicode
    normalization)."""
    try:  # names as they look: 회의.txt in NFD (from a Mac) is taken for 회의.txt in NFC
        taken = {unicodedata.normalize("NFC", name) for name in os.listdir(out_dir)}
    except OSError:
        taken = set()
    for n in range(1, 1000):
        candidate = stem if n == 1 else f"{stem}-{n}"
        created: list[Path] = []
        try:
            for path in output_paths(out_dir, candidate, formats):
                if unicodedata.normalize("NFC", path.name) in taken:
                    raise FileExistsError(path)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                created.append(path)
            return candidate, created
        except FileExistsError:
            for path in created:
                path.unlink(missing_ok=True)
        except OSError as exc:
            for path in created:
                path.unlink(missing_ok=True)
            raise OutputError(f"{out_dir}: cannot write the transcript ({exc.strerror})") from None
    raise OutputError(f"{out_dir}: {stem}, {stem}-2 ... {stem}-999 all exist")


def run(args: argparse.Namespace) -> int:
    language = normalize_language(args.language)
    if args.output_dir is None and (args.format is not None or args.name is not None):
        raise OptionsError("--format and --name only apply with -o DIR (nothing is written)")
    formats = expand_formats("all" if args.format is None else args.format)
    if args.beam_size < 0:
        raise OptionsError(f"--beam-size must be >= 0, got {args.beam_size}")
    if args.name is not None:
        _check_name(args.name)
    out_dir = Path(args.output_dir) if args.output_dir else None
    started = time.strftime("%Y%m%d-%H%M%S")
    is_file = args.input not in (None, "-") and Path(args.input).is_file()
    stem = args.name or (Path(args.input).stem if is_file else f"live-{started}")
    if out_dir is not None:
        busy = batch_running(out_dir)  # its files are the batch job's, not ours
        if busy is not None:
            raise MalsoriError(busy)
        _prepare_dir(out_dir)
        _check_name_fits(out_dir, stem, formats, given=args.name is not None)
    source = open_source(args.input)  # first: a missing microphone fails before the model loads
    try:
        loaded = load_model(
            args.model,
            device=args.device,
            compute_type=args.compute_type,
            cpu_threads=args.threads,
            allow_download=args.allow_download,
        )
        from ..options import DecodeOptions

        check_options(loaded, DecodeOptions(language=language))
    except BaseException:
        source.close()
        raise
    stop = threading.Event()
    # stdout fails (`| head` has read enough, a full disk): with -o the session goes on for
    # the files; without, nothing would get the rest, so it stops (a microphone never ends)
    printer = Printer(sys.stdout, on_error=stop.set if out_dir is None else None)
    options = LiveOptions(language=language, beam_size=args.beam_size, prompt=args.initial_prompt)
    session = LiveSession(loaded, options, printer)
    print(f"malsori: listening to {source.name} (Ctrl-C to stop)", file=sys.stderr)
    interrupted = False
    caught: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:  # SIGTERM, SIGHUP: stop as Ctrl-C does
        caught.append(signum)
        stop.set()

    ctrl_c: list[bool] = []

    def on_interrupt(signum: int, frame: Any) -> None:
        # The first Ctrl-C stops like SIGTERM: raised in the middle of a decode it lost the
        # utterance being finished (printed, yet not in the files; a hostile tester). The
        # second one is a KeyboardInterrupt: the utterance being finished is left out.
        if ctrl_c:
            raise KeyboardInterrupt
        ctrl_c.append(True)
        stop.set()
        _note("malsori: finishing the last utterance (Ctrl-C again to leave it out)")

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_interrupt)
    abandoned = False
    try:
        run_session(
            source,
            session,
            stop,
            finishing=lambda: _note(
                "malsori: finishing the last utterance (Ctrl-C again to leave it out)"
            ),
        )
    except Abandoned:  # Ctrl-C twice: the utterance being finished is left out
        interrupted = abandoned = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    interrupted = interrupted or bool(ctrl_c)
    if printer.column or printer.shown:
        printer(SpeechStopped("", 0.0))
    stats = session.stats
    _note(
        f"malsori: {session.received_seconds:.1f} s of audio, {stats.decodes} decodes, "
        f"max lag {stats.max_lag:.1f} s{_stopped_by(interrupted, caught)}"
    )
    if abandoned:
        _note(
            "malsori: stopped again while the last utterance was being finished: it is not "
            "in the transcript (press Ctrl-C once to keep it)"
        )
    if session.received_seconds == 0 and not abandoned:
        # a WAV with a header and no samples, a silent pipe: as `transcribe` says it
        raise AudioError(
            f"{source.name}: no audio was received (zero-length audio); nothing written"
        )
    if out_dir is not None:
        try:
            _write(session.transcript(), out_dir, stem, formats)
        except (MalsoriError, OSError) as exc:  # full disk, folder gone, a batch started...
            reason = str(exc) if isinstance(exc, MalsoriError) else exc.strerror or str(exc)
            raise OutputError(
                f"{reason}; {rescue(session.transcript(), formats=formats)}"
            ) from None
    if isinstance(printer.error, BrokenPipeError):  # `malsori live | head`: quiet, as cat
        from . import _quiet_broken_pipe

        return _quiet_broken_pipe()
    if printer.error is not None:  # the text on stdout is cut: never exit 0 for it
        error = printer.error
        _note(f"malsori: error: cannot write the output: {error.strerror or error}")
        return 128 + caught[0] if caught else 1
    if abandoned:
        return 130  # what was asked was not all done
    return 128 + caught[0] if caught else 0


def _write(transcript: Transcript, out_dir: Path, stem: str, formats: list[str]) -> None:
    busy = batch_running(out_dir)  # started during the session
    if busy is not None:
        raise MalsoriError(busy)
    stem, claimed = _reserve(out_dir, stem, formats)
    try:
        paths = write_transcript(transcript, out_dir, stem, formats)
    except BaseException:
        for path in claimed:
            path.unlink(missing_ok=True)
        raise
    _note(f"malsori: wrote {', '.join(str(p) for p in paths)}")


def _stopped_by(interrupted: bool, caught: list[int]) -> str:
    if caught:
        return f" (stopped by {signal.Signals(caught[0]).name})"
    return " (stopped by Ctrl-C)" if interrupted else ""
