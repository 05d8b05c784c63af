"""``malsori batch INPUT_DIR --output-dir OUT``: transcribe a whole directory, resumably.

    malsori batch INPUT_DIR -o OUT [--format ...] [--model ...] [--workers N] [--retries K]
                  [--glob PATTERN] [--engine local|ray] [--address auto|ray://...]
    malsori batch status OUT          progress and totals from OUT's job database
    malsori batch report OUT [-o report.csv|report.json]   every file's row

Re-running the same command resumes: done files are skipped, changed files redone, failed
files retried up to --retries times, files left running by a killed run reclaimed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import MalsoriError
from ..writers import FORMATS, expand_formats, options_for_formats
from .transcribe import add_decode_arguments, add_model_arguments, decode_options_from_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="transcribe a directory tree, resumably (local or Ray)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="INPUT_DIR|status|report")
    p.add_argument("out", nargs="?", metavar="OUT", help="the output directory (status/report)")
    p.add_argument(
        "--output-dir",
        "-o",
        default=None,
        metavar="DIR",
        help="where outputs and the job database go (for report: the report file)",
    )
    p.add_argument(
        "--format", "-f", default="all", help=f"{', '.join(FORMATS)}, all, or a comma list [all]"
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes, one model each [1]")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed file [2]")
    p.add_argument(
        "--glob",
        default=None,
        metavar="PATTERN",
        help="only files matching (e.g. '*.mp3') [audio/video extensions]",
    )
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument(
        "--address", default=None, help="Ray cluster: auto or ray://host:10001 [start a local Ray]"
    )
    p.add_argument("--quiet", "-q", action="store_true")
    add_model_arguments(p)
    add_decode_arguments(p)
    p.set_defaults(func=run)


def _summary_lines(s: dict[str, float]) -> list[str]:
    speed = f"{s['audio_s'] / s['processing_s']:.1f}x realtime" if s["processing_s"] else "-"
    return [
        f"files: {int(s['total'])} total, {int(s['done'])} done, {int(s['failed'])} failed, "
        f"{int(s['pending'])} pending, {int(s['running'])} running",
        f"audio done: {s['audio_s'] / 3600:.3f} h, processing {s['processing_s']:.1f} s ({speed} "
        "per worker)",
    ]


def run(args: argparse.Namespace) -> int:
    from ..batch import DB_NAME, BatchConfig, JobStore, run_batch

    if args.target in ("status", "report"):
        if not args.out:
            raise MalsoriError(f"usage: malsori batch {args.target} OUT")
        if not (Path(args.out) / DB_NAME).is_file():
            raise MalsoriError(f"{args.out}: no batch job here (no {DB_NAME})")
        store = JobStore(args.out)
        try:
            if args.target == "status":
                print("\n".join(_summary_lines(store.summary())))
                for row in store.rows():
                    if row.status == "failed":
                        print(f"failed: {row.path}: {row.error}")
                return 0
            rows = [asdict(r) for r in store.rows()]
        finally:
            store.close()
        dest = args.output_dir
        if dest and dest.endswith(".json"):
            text = json.dumps(rows, indent=2, ensure_ascii=False)
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
                )
            text = buf.getvalue()
        if dest:
            from .._atomic import atomic_write_text

            atomic_write_text(dest, text)
            print(f"wrote {dest}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0

    if not args.output_dir:
        raise MalsoriError("malsori batch INPUT_DIR needs --output-dir OUT")
    options = decode_options_from_args(args)
    formats = tuple(expand_formats(args.format))
    options = options_for_formats(options, formats)
    config = BatchConfig(
        input_dir=args.target,
        output_dir=args.output_dir,
        model=args.model,
        compute_type=args.compute_type,
        device=args.device,
        threads=args.threads,
        formats=formats,
        options=options.to_dict(),
    )
    result, counts = run_batch(
        config,
        workers=args.workers,
        retries=args.retries,
        pattern=args.glob,
        engine=args.engine,
        address=args.address,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    print(
        f"scan: {counts['new']} new, {counts['changed']} changed, {counts['unchanged']} "
        f"unchanged, {counts['unreadable']} unreadable; {counts['reclaimed']} reclaimed, "
        f"{counts['retried']} retried",
        file=sys.stderr,
    )
    for line in _summary_lines(result.summary):
        print(line, file=sys.stderr)
    if result.interrupted:
        return 130
    if result.summary["failed"] or result.summary["pending"]:
        print(
            f"malsori: {int(result.summary['failed'])} file(s) failed; see "
            f"'malsori batch status {args.output_dir}'",
            file=sys.stderr,
        )
        return 1
    return 0
