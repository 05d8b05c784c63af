"""``malsori diarize FILE... [-o DIR]``: who spoke when, offline (RTTM and JSON)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import MalsoriError, NoSpaceError, OptionsError, OutputError
from ._rescue import rescue_texts

FORMATS = ("rttm", "json")
#: File name endings: the turns' json is <stem>.speakers.json, never <stem>.json, which is
#: the transcript's (`malsori transcribe --diarize -o` into the same folder).
SUFFIXES = {"rttm": ".rttm", "json": ".speakers.json"}


def add_speaker_arguments(p: argparse.ArgumentParser | Any, *, with_limits: bool = True) -> None:
    """``--num-speakers`` (and ``--min-speakers`` / ``--max-speakers``)."""
    p.add_argument(
        "--num-speakers",
        type=int,
        default=None,
        metavar="N",
        help="exactly N speakers [default: estimated]",
    )
    if with_limits:
        p.add_argument("--min-speakers", type=int, default=None, metavar="N")
        p.add_argument("--max-speakers", type=int, default=None, metavar="N")


def options_from_args(args: argparse.Namespace) -> Any:
    from ..diarize import DiarizeOptions

    opts = DiarizeOptions(
        num_speakers=args.num_speakers,
        min_speakers=getattr(args, "min_speakers", None),
        max_speakers=getattr(args, "max_speakers", None),
    )
    opts.check()
    return opts


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diarize",
        help="who spoke when (speaker diarization): RTTM and JSON",
        description="Speaker diarization, offline: writes <stem>.rttm and <stem>.speakers.json "
        "per input (speakers SPEAKER_1, SPEAKER_2, ... with overlapped speech; never over a "
        "file malsori did not write for that input). Without --output-dir the RTTM is "
        "printed to stdout. Needs the diarize extra.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio/video files")
    p.add_argument("--output-dir", "-o", default=None, metavar="DIR", help="write files here")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with -o: replace existing files even if malsori did not write them for this input",
    )
    p.add_argument(
        "--format",
        "-f",
        default=None,
        help="rttm, json or rttm,json [default: rttm to stdout, both with --output-dir]",
    )
    add_speaker_arguments(p)
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads [1]")
    p.set_defaults(func=run)


def _formats(value: str | None, to_dir: bool) -> list[str]:
    if value is None:
        return list(FORMATS) if to_dir else ["rttm"]
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise OptionsError(
            f"unknown diarization format {','.join(bad) or value!r}; "
            "expected rttm, json or rttm,json"
        )
    if not to_dir and len(names) > 1:
        raise OptionsError("several formats need --output-dir (stdout takes one format)")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    from .._ledger import Ledger, input_id
    from ..audio import load_audio
    from ..diarize import load_diarizer
    from .transcribe import _check_output_dir, _stems, check_early, write_checked, write_stdout

    options = options_from_args(args)
    if args.threads < 1:
        raise OptionsError(f"--threads must be at least 1, got {args.threads}")
    out_dir = Path(args.output_dir) if args.output_dir else None
    formats = _formats(args.format, out_dir is not None)
    if "-" in args.files:
        raise OptionsError("diarize reads files, not stdin ('-')")
    if len(set(args.files)) < len(args.files):
        raise OptionsError("the same input is given twice")
    stems = _stems(args.files, "diarize") if out_dir is not None else {}
    if out_dir is not None:
        _check_output_dir(out_dir)
    inputs: set[tuple[int, int]] = set()  # never written over
    for name in args.files:
        with contextlib.suppress(OSError):
            st = os.stat(name)
            inputs.add((st.st_dev, st.st_ino))
    diarizer = load_diarizer(threads=args.threads)
    failures = 0
    for n, name in enumerate(args.files):
        try:
            if out_dir is not None:  # refused before the work, not after
                stem = stems.get(name, Path(name).stem)
                targets = [out_dir / f"{stem}{SUFFIXES[fmt]}" for fmt in formats]
                check_early(out_dir, targets, name, input_id(name), args.overwrite)
            result = diarizer(load_audio(name), options)
            stem = stems.get(name, Path(name).stem)
            texts = {"rttm": result.to_rttm(Path(name).stem), "json": result.to_json()}
            asked = options.num_speakers or options.min_speakers
            fewer = (
                f" (fewer than the {asked} asked for: too little speech to tell more apart)"
                if asked and len(result.speakers) < asked
                else ""
            )
            print(
                f"{name}: {len(result.speakers)} speaker(s), {len(result.turns)} turn(s){fewer}",
                file=sys.stderr,
            )
            if out_dir is None:
                if len(args.files) > 1 and formats == ["json"]:
                    write_stdout(f"{'' if n == 0 else chr(10)}==> {name} <==\n")
                write_stdout(texts[formats[0]])
                continue
            files = [(out_dir / f"{stem}{SUFFIXES[fmt]}", texts[fmt]) for fmt in formats]
            renamed = Ledger(out_dir).under_other_names(Path(stem).name, input_id(name))
            if renamed:  # as transcribe -o: the name counts the audio beside the input
                print(
                    f"{name}: note: its earlier result ({', '.join(renamed)}) in {out_dir} is "
                    f"left as it is; it is now written as {Path(stem).name}.*, as batch names "
                    "it (a recording keeps its extension while another beside it has the "
                    "same name)",
                    file=sys.stderr,
                )
            older = Ledger(out_dir).own_others(stem, input_id(name), formats, SUFFIXES)
            if older:  # as transcribe -o: kept, named (a tester's 2-speaker json beside
                # a 1-speaker rttm, without a word)
                print(
                    f"{name}: note: its {', '.join(SUFFIXES[f] for f in older)} in {out_dir} "
                    "is from an earlier run and is left as it is (ask for it with -f to write "
                    "it again)",
                    file=sys.stderr,
                )
            # the ledger's rules, as transcribe -o: never over a file malsori did not write
            # for this input, nor one edited since (a transcript's json was replaced)
            try:
                written = write_checked(
                    out_dir, [p for p, _ in files], functools.partial(list, files), name,
                    input_id(name), args.overwrite, inputs,
                )  # fmt: skip
            except OutputError as exc:  # a full disk, a size limit: keep the finished result
                saved = rescue_texts([(p.name, text) for p, text in files])
                raise type(exc)(f"{exc}; {saved}") from exc
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
        except NoSpaceError as exc:
            print(f"malsori: error: {exc}", file=sys.stderr)
            return 1
        except MalsoriError as exc:
            print(f"malsori: error: {exc}", file=sys.stderr)
            failures += 1
    if failures:
        print(f"malsori: {failures} of {len(args.files)} input(s) failed", file=sys.stderr)
        return 1
    return 0


__all__ = ["add_speaker_arguments", "options_from_args", "register", "run"]
