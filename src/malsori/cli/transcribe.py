"""``malsori transcribe FILE...``: transcribe files (or ``-`` for stdin) with one model.

Each input that fails (missing, not audio, truncated...) gets one line on stderr and the
others still run; the exit status is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._progress import progress_bar
from .._warnings import collecting
from ..errors import MalsoriError, NoSpaceError, OptionsError, OutputError
from ..transcript import Transcript
from ..writers import FORMATS, WRITERS, expand_formats, options_for_formats, set_subtitle_options
from ._args import (
    add_decode_arguments,
    add_model_arguments,
    add_subtitle_arguments,
    decode_options_from_args,
    engine_config_from_args,
    subtitle_options_from_args,
)
from ._rescue import rescue
from .diarize import add_speaker_arguments
from .diarize import options_from_args as speaker_options_from_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe audio or video files",
        description="Transcribe audio/video files offline. Without --output-dir the result "
        "is printed to stdout.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio/video files, or - for stdin")
    p.add_argument(
        "--format",
        "-f",
        default=None,
        help=f"output format: {', '.join(FORMATS)}, all, or a comma list "
        "[default: txt to stdout, all with --output-dir]",
    )
    p.add_argument(
        "--output-dir",
        "-o",
        default=None,
        metavar="DIR",
        help="write <input stem>.<format> files here",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with -o: replace existing files even if malsori did not write them for this "
        "input (by default a rerun rewrites only its own unchanged results)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    d = p.add_argument_group("speakers (the diarize extra)")
    d.add_argument(
        "--diarize",
        action="store_true",
        help="label speakers: [SPEAKER_1] in txt, srt prefixes, vtt voice tags, json and tsv "
        "'speaker' (turns word timestamps on)",
    )
    add_speaker_arguments(d)
    add_model_arguments(p)
    add_decode_arguments(p)
    add_subtitle_arguments(p)
    p.set_defaults(func=run)


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise MalsoriError(f"cannot write to output directory {path}: it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise MalsoriError(
            f"cannot write to output directory {path}: {exc.strerror or exc}"
        ) from exc


def _write(
    result: Any, out_dir: Path, stem: str, formats: list[str], label: str, source: str,
    overwrite: bool, inputs: set[tuple[int, int]],
) -> list[Path]:  # fmt: skip
    """Write one input's formats into ``out_dir``: refused (OutputError) where a file there
    is not this input's own unchanged result, unless ``overwrite`` (:mod:`malsori._ledger`),
    and always where it is one of this run's inputs (``inputs``: device and inode)."""
    from ..writers import output_paths, render_transcript

    targets = output_paths(out_dir, stem, formats)
    return write_checked(
        out_dir, targets, lambda: render_transcript(result, out_dir, stem, formats),
        label, source, overwrite, inputs,
    )  # fmt: skip


def write_checked(
    out_dir: Path, targets: list[Path], render: Callable[[], list[tuple[Path, str]]],
    label: str, source: str, overwrite: bool, inputs: set[tuple[int, int]],
) -> list[Path]:  # fmt: skip
    """Write ``render()``'s files (at ``targets``) under the ledger's rules: never over a
    file malsori did not write for this input, one edited since, or an input of this run;
    listed in the ledger before they are renamed into place. Shared by transcribe and
    diarize."""
    from .._atomic import atomic_write_many, output_error, sweep_leftovers
    from .._ledger import Ledger

    try:
        ("".join(t.name for t in targets) + source).encode("utf-8")
    except UnicodeEncodeError:
        raise OutputError(
            f"{label}: the file name is not valid UTF-8 (the list of what malsori wrote is "
            "text); rename it"
        ) from None
    for target in targets:
        try:
            st = target.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inputs:
            raise OutputError(f"{target} is an input of this run; it is never written over")
    ledger = Ledger(out_dir)
    try:
        with ledger.locked() as entries:
            sweep_leftovers(targets)  # of a run killed while writing these (under the lock)
            ledger.check(entries, targets, source, label, overwrite)
            files = render()
            ledger.record(files, source)  # first: a run killed while renaming is known
            atomic_write_many(files)
    except OSError as exc:  # a name too long for the disk, ...: one line, the next input
        raise output_error(exc, exc.filename or targets[0]) from None
    return [p for p, _ in files]


def check_early(
    out_dir: Path, targets: list[Path], label: str, source: str, overwrite: bool
) -> None:
    """The refusal :func:`write_checked` would give, before any decoding (a two-hour
    lecture is not decoded only to be refused); the write checks again under the lock."""
    from .._atomic import output_error
    from .._ledger import Ledger

    ledger = Ledger(out_dir)
    try:
        with ledger.locked() as entries:
            ledger.check(entries, targets, source, label, overwrite)
    except OSError as exc:
        raise output_error(exc, exc.filename or targets[0]) from None


def _read_input(name: str, label: str) -> tuple[Any, str]:
    """The decoded audio of one input and how the ledger records it (a pipe's content
    hash: its path changes on every run)."""
    import stat

    from .._ledger import input_id
    from ..audio import load_audio

    if name == "-":
        data = sys.stdin.buffer.read()
        return load_audio(data, name=label), input_id(name, data)
    try:
        piped = stat.S_ISFIFO(os.stat(name).st_mode)
    except OSError:
        piped = False  # load_audio says what is wrong with the path
    if piped:
        with open(name, "rb") as fh:
            data = fh.read()
        return load_audio(data, name=label), input_id(name, data)
    return load_audio(name), input_id(name)


#: What each quality flag of a segment means, for the warning ``transcribe`` prints.
FLAG_WARNINGS = {
    "little_text": "far less text than their speech (speech the model does not understand: "
    "singing, noise, a language it hardly knows)",
    "repetition": "text that repeats itself (a decoding loop)",
    "low_confidence": "text the model is unsure of (low average log-probability)",
    "sampled": "text found by sampling after greedy and beam decoding failed the quality "
    "checks: it may differ from run to run",
}


def _warn_doubtful(
    label: str, result: Transcript, loaded: Any, forced_language: str | None = None
) -> None:
    """One warning line per quality flag found in the transcript (docs/pipeline.md), with
    the first such segment: an English-only model on Korean writes "Thank you very much."
    or "Thank you for watching", and nothing said so but a flag in the json."""
    for flag, meaning in FLAG_WARNINGS.items():
        flagged = [s for s in result.segments if flag in s.flags]
        if not flagged:
            continue
        hint = ""
        if flag in ("little_text", "sampled", "low_confidence") and not loaded.is_multilingual:
            hint = (
                "; an English-only model writes other languages as invented English: "
                "use --model base"
            )
        elif flag in ("little_text", "sampled", "low_confidence") and forced_language:
            # --language ko on a show with English quotes: the English came out as
            # invented Korean (a Korean tester); without it each stretch gets its own
            hint = (
                f"; --language {forced_language} makes every stretch {forced_language}: if "
                "the audio mixes languages, leave --language out"
            )
        first = flagged[0]
        print(
            f"{label}: warning: {len(flagged)} segment(s) with {meaning} (flag {flag} in json), "
            f"e.g. at {first.start:.1f} s: {first.text.strip()[:80]!r}{hint}",
            file=sys.stderr,
        )


def write_stdout(text: str) -> None:
    """Write to stdout with ``os.write``: after a short write (``ulimit -f``, a full disk)
    Python's buffered stdout can drop the error and exit 0 with a cut transcript; this
    raises it (the CLI turns it into one line and exit 1)."""
    sys.stdout.flush()
    view = memoryview(text.encode("utf-8"))
    while view:
        view = view[os.write(sys.stdout.fileno(), view) :]


def _stems(files: list[str], verb: str = "transcribe") -> dict[str, str]:
    """Each input's output stem, by batch's rule (:mod:`malsori.batch.naming`): inputs that
    share a stem keep their extension (``a.wav.txt``, ``a.mp3.txt``). Two inputs with the same
    file name from different folders (``d1/a.wav``, ``d2/a.wav``) would write the same files
    into the one output folder: refused before any work."""
    from ..batch.naming import output_bases

    names = {f: "stdin" if f == "-" else Path(f).name for f in files}
    by_name: dict[str, list[str]] = {}
    for f, name in names.items():
        by_name.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(f)
    clashes = [fs for fs in by_name.values() if len(fs) > 1]
    if clashes:
        listed = "; ".join(" and ".join(fs) for fs in clashes)
        same_look = any(
            len({unicodedata.normalize("NFC", f) for f in fs}) < len(set(fs)) for fs in clashes
        )
        hint = " (names that differ only in Unicode normal form look the same)" if same_look else ""
        raise OutputError(
            f"inputs would write the same output files: {listed}{hint}; {verb} them into "
            "different --output-dir folders"
        )
    bases = output_bases([*names.values(), *_audio_siblings(files)])
    return {f: bases[name] for f, name in names.items()}


def _audio_siblings(files: list[str]) -> set[str]:
    """Audio files beside each input that share its stem (``talk.mp3`` beside
    ``talk.wav``), as batch counts them: an input's output name then does not depend on
    which others are on the command line. (``for f in dir/*; do malsori transcribe "$f" -o
    out; done`` wrote talk.wav's transcript as talk.txt, then refused talk.mp3, whose
    name it was too: a tester.)"""
    from ..batch.naming import _key
    from ..batch.scan import AUDIO_EXTENSIONS

    by_folder: dict[Path, set[str]] = {}  # each folder read once: the stems of its inputs
    own: set[tuple[int, int]] = set()  # the inputs themselves, however the disk spells them
    for f in files:
        with contextlib.suppress(OSError):
            if f != "-" and os.path.isfile(f):
                by_folder.setdefault(Path(f).parent, set()).add(_key(Path(f).stem))
                st = os.stat(f)
                own.add((st.st_dev, st.st_ino))
    found: set[str] = set()
    for folder, stems in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if (
                name.startswith(".")
                or Path(name).suffix.lower() not in AUDIO_EXTENSIONS
                or _key(Path(name).stem) not in stems
            ):
                continue
            with contextlib.suppress(OSError):  # an input typed TALK.WAV on a disk that
                st = entry.stat()  # keeps talk.wav (macOS, SMB) is no sibling of its own
                if (st.st_dev, st.st_ino) not in own:
                    found.add(name)
    return found


def run(args: argparse.Namespace) -> int:
    import time

    from ..engine import check_options, load_model, transcribe

    options = decode_options_from_args(args)  # validates language, beam size, ...
    set_subtitle_options(subtitle_options_from_args(args))
    default = "all" if args.output_dir else "txt"
    formats = expand_formats(default if args.format is None else args.format)
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir is None and len(formats) > 1:
        raise OptionsError("several formats need --output-dir (stdout takes one format)")
    if args.files.count("-") > 1:
        raise OptionsError("stdin ('-') can be given only once")
    seen: dict[object, str] = {}
    for f in args.files:  # the same file under two spellings (a.wav, ./a.wav) too
        try:
            st = os.stat(f) if f != "-" else None
            key: object = (st.st_dev, st.st_ino) if st is not None else f
        except OSError:
            key = f  # load_audio says what is wrong with it
        if key in seen:
            again = f"{seen[key]!r}" + (f" (as {f!r})" if seen[key] != f else "")
            raise OptionsError(f"the same input is given twice: {again}")
        seen[key] = f
    stems = _stems(args.files) if out_dir is not None else {}
    if out_dir is not None:
        if all(name != "-" and os.path.isdir(name) for name in args.files):
            # nothing to transcribe: say so before -o is created (it is, for a real input)
            raise OptionsError(
                f"{', '.join(args.files)}: a folder, not an audio file; for a folder of "
                "recordings use: malsori batch DIR -o OUT"
            )
        from .._ledger import batch_running

        busy = batch_running(out_dir)  # before the folder is made: none is left inside it
        if busy is not None:
            raise MalsoriError(busy)
        _check_output_dir(out_dir)

    options = options_for_formats(options, formats)
    diarizer: Any = None
    speaker_options: Any = None
    if args.diarize:
        from ..diarize import load_diarizer

        speaker_options = speaker_options_from_args(args)
        options = options.replace(word_timestamps=True)  # each word gets its speaker
        diarizer = load_diarizer()
    elif any(getattr(args, f"{a}_speakers") is not None for a in ("num", "min", "max")):
        raise OptionsError("--num-speakers, --min-speakers and --max-speakers need --diarize")
    loaded = load_model(engine_config_from_args(args))
    check_options(loaded, options)

    show_progress = not args.quiet and sys.stderr.isatty()
    inputs: set[tuple[int, int]] = set()  # never written over, --overwrite or not
    for name in args.files:
        with contextlib.suppress(OSError):
            if name != "-":
                st = os.stat(name)
                inputs.add((st.st_dev, st.st_ino))
    failures = 0
    several = len(args.files) > 1
    for n, name in enumerate(args.files):
        label = "<stdin>" if name == "-" else name
        try:
            if out_dir is not None and name != "-" and os.path.isfile(name):
                from .._ledger import input_id
                from ..writers import output_paths

                targets = output_paths(out_dir, stems[name], formats)
                check_early(out_dir, targets, label, input_id(name), args.overwrite)
            with collecting() as read_warnings:  # kept in the json with the decoding's
                audio, source = _read_input(name, label)
            with progress_bar(
                "{task.description}",
                "{task.completed:.0f}/{task.total:.0f} s audio",
                "{task.fields[speed]}",
                enabled=show_progress,
                transient=True,
            ) as progress:
                task = progress.add_task(Path(label).name, total=len(audio) / 16000, speed="")
                t0 = time.perf_counter()

                def report(done: float, total: float, task: Any = task, t0: float = t0) -> None:
                    elapsed = time.perf_counter() - t0
                    speed = f"{done / elapsed:.1f}x realtime" if elapsed > 0 and done else ""
                    progress.update(task, completed=done, speed=speed)

                if out_dir is not None:  # an earlier run's other formats of this input
                    from .._ledger import Ledger

                    ledger = Ledger(out_dir)
                    older = ledger.own_others(stems[name], source, formats)
                    if older:  # kept: they may hold what this run does not (speakers,
                        # a larger model); the user decides
                        print(
                            f"{label}: note: its {', '.join(older)} in {out_dir} are from an "
                            "earlier run and are left as they are (ask for them with -f to "
                            "write them again)",
                            file=sys.stderr,
                        )
                    renamed = ledger.under_other_names(Path(stems[name]).name, source)
                    if renamed:  # another recording now shares its name: kept, said
                        print(
                            f"{label}: note: its earlier transcript ({', '.join(renamed)}) in "
                            f"{out_dir} is left as it is; it is now written as "
                            f"{Path(stems[name]).name}.*, as batch names it (a recording "
                            "keeps its extension while another beside it has the same name)",
                            file=sys.stderr,
                        )
                # --diarize: the speakers are found while the words are decoded
                pending = diarizer.submit(audio, speaker_options) if diarizer else None
                result = transcribe(audio, loaded, options=options, progress=report)
                result = replace(result, warnings=[*read_warnings, *result.warnings])
            _warn_doubtful(label, result, loaded, options.language)
            if pending is not None:
                from ..diarize import assign_speakers, token_encoder

                encode = token_encoder(loaded.model)  # split segments keep their tokens
                result = assign_speakers(result, pending.result().turns, encode)
            if out_dir is not None:
                try:
                    paths = _write(
                        result, out_dir, stems[name], formats, label, source, args.overwrite,
                        inputs,
                    )  # fmt: skip
                except OutputError as exc:  # the decoding is done: it is kept elsewhere
                    saved = rescue(
                        result, stem=Path(stems[name]).name or "transcript", formats=formats
                    )
                    raise type(exc)(f"{exc}; {saved}") from None
                for path in paths:
                    print(f"wrote {path}", file=sys.stderr)
        except NoSpaceError as exc:
            left = len(args.files) - n - 1
            print(f"malsori: error: {exc}", file=sys.stderr)
            print(
                f"malsori: stopped: {label} and {left} later input(s) not written "
                "(none of its formats was left half-written)",
                file=sys.stderr,
            )
            return 1
        except MalsoriError as exc:
            print(f"malsori: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        if out_dir is None:
            if several:  # say which transcript is which, as head(1) does
                write_stdout(f"{'' if n == 0 else chr(10)}==> {label} <==\n")
            write_stdout(WRITERS[formats[0]](result))
    if failures:
        print(f"malsori: {failures} of {len(args.files)} input(s) failed", file=sys.stderr)
        return 1
    return 0


__all__ = ["add_decode_arguments", "add_model_arguments", "register", "run"]
