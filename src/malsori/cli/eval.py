"""``malsori eval MANIFEST.tsv``: WER/CER and speed of one or more configurations.

Repeating --model, --compute-type, --beam-size or --batch-size compares every combination
side by side. Rows that cannot be scored are listed with their line numbers, and the exit
status is 1 when there were any.

``malsori eval --diarization MANIFEST.tsv`` (columns path, rttm[, language]) scores speaker
diarization instead: DER (missed, false alarm, confusion; --collar seconds each side of the
reference boundaries, overlapped speech scored) and how often the speaker count is right;
the report is Markdown, or JSON/CSV by the --output extension (.md, .json, .csv). Rows that
cannot be scored are listed as MANIFEST:LINE and the exit status is 1. --model,
--compute-type, --beam-size, --batch-size and --plot do not apply to it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_many
from .._extras import require_extra
from ..engine import DEFAULT_COMPUTE_TYPE
from ..errors import ManifestError, OptionsError, OutputError
from ._args import description
from ._outputs import check_outputs, make_parent
from ._rescue import rescue_texts


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="word/character error rates and speed on a TSV manifest",
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "manifest",
        metavar="MANIFEST.tsv",
        help="TSV with columns path, language, reference (paths relative to it)",
    )
    p.add_argument("--model", action="append", help="model name or directory (repeatable) [base]")
    p.add_argument("--compute-type", action="append", help=f"repeatable [{DEFAULT_COMPUTE_TYPE}]")
    p.add_argument(
        "--beam-size", action="append", type=int, help="repeatable [0 = automatic, as transcribe]"
    )
    p.add_argument("--batch-size", action="append", type=int, help="repeatable [8; 1 = sequential]")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--language", default=None, help="only rows of this language (e.g. en or ko) [all]"
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N usable rows")
    p.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="REPORT.{md,json,csv}",
        help="write the report here (format from the extension) [Markdown to stdout]",
    )
    p.add_argument(
        "--plot",
        nargs="?",
        const="",
        default=None,
        metavar="PLOT.png",
        help="speed vs WER plot [next to --output, or eval-plot.png]",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing report or plot file"
    )
    p.add_argument("--quiet", "-q", action="store_true")
    d = p.add_argument_group("speaker diarization")
    d.add_argument(
        "--diarization",
        action="store_true",
        help="score diarization (DER) on a manifest with path and rttm columns",
    )
    d.add_argument("--collar", type=float, default=0.25, help="seconds, each side [0.25]")
    d.add_argument("--num-speakers", type=int, default=None, metavar="N")
    p.set_defaults(func=run)


def _refuse_speech_options(args: argparse.Namespace) -> None:
    """The speech-eval options mean nothing to --diarization: refuse them by name."""
    from ..errors import OptionsError

    given = [
        flag
        for flag, value in (
            ("--model", args.model),
            ("--compute-type", args.compute_type),
            ("--beam-size", args.beam_size),
            ("--batch-size", args.batch_size),
            ("--plot", args.plot),
        )
        if value is not None
    ]
    if given:
        raise OptionsError(
            f"{', '.join(given)} cannot be used with --diarization (it scores the speaker "
            "diarization alone, with no Whisper model and no plot)"
        )


def run_diarization(args: argparse.Namespace) -> int:
    """``--diarization``: DER per file and overall (the diarize extra). Rows that cannot be
    scored (missing or undecodable audio, an RTTM that is not RTTM, an empty reference for
    audio with speech) are listed as ``MANIFEST:LINE: why``; the rest are scored and
    reported, and the exit status is 1."""
    import json
    import time

    from ..audio import load_audio
    from ..diarize import DiarizeOptions, load_diarizer
    from ..errors import MalsoriError, OptionsError
    from ..evaluate.der import (
        FileScore,
        diarization_error,
        read_diarization_manifest,
        reference_turns,
        render_der_csv,
        render_der_markdown,
        scores_to_json,
    )
    from ..manifest import ManifestProblem

    _refuse_speech_options(args)
    if args.collar < 0:
        raise OptionsError(f"--collar must be >= 0, got {args.collar}")
    suffix = Path(args.output).suffix.lower() if args.output else ""
    if args.output and suffix not in (".md", ".json", ".csv"):
        raise OptionsError(
            f"cannot tell the report format of {args.output}: use .md, .json or .csv"
        )
    options = DiarizeOptions(num_speakers=args.num_speakers)
    options.check()
    rows, problems = read_diarization_manifest(args.manifest)
    if args.output:  # never the manifest, nor a file it lists (even with --overwrite)
        inputs = [args.manifest, *(p for r in rows for p in (r.path, r.rttm))]
        check_outputs([("-o", args.output)], inputs, overwrite=args.overwrite)
    if args.language:
        rows = [r for r in rows if args.language in r.language.split("+")]
    if args.limit is not None:
        rows = rows[: args.limit]
    if not rows:
        for problem in problems:
            print(f"malsori: {args.manifest}:{problem.line}: {problem.message}", file=sys.stderr)
        raise ManifestError(f"{args.manifest}: no usable rows to evaluate")
    diarizer = load_diarizer(threads=args.threads or 1)
    scores: list[FileScore] = []
    for row in rows:
        try:
            reference = reference_turns(row)
            audio = load_audio(row.path)
        except MalsoriError as exc:
            problems.append(ManifestProblem(row.line, str(exc)))
            continue
        start = time.perf_counter()
        hyp = diarizer(audio, options)
        elapsed = time.perf_counter() - start
        if not reference and hyp.turns:
            speech = sum(t.duration for t in hyp.turns)
            problems.append(
                ManifestProblem(
                    row.line,
                    f"{row.rttm.name} has no speaker turns, but {speech:.1f} s of speech "
                    f"were found in {row.path.name} (an empty reference cannot be scored)",
                )
            )
            continue
        result = diarization_error(reference, hyp.turns, collar=args.collar, duration=hyp.duration)
        scores.append(FileScore(row, result, elapsed, hyp.duration))
        if not args.quiet:
            print(
                f"line {row.line} {row.path.name}: DER {result.der:.1%} "
                f"({result.hyp_speakers}/{result.ref_speakers} speakers)",
                file=sys.stderr,
            )
    problems.sort(key=lambda p: p.line)
    markdown = render_der_markdown(scores, args.collar, problems)
    if args.output:
        if suffix == ".json":
            data = scores_to_json(scores, args.collar, problems)
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        elif suffix == ".csv":
            text = render_der_csv(scores)
        else:
            text = markdown
        save_together([(args.output, text)])
    else:
        sys.stdout.write(markdown)
    if problems:
        for problem in problems:
            print(f"malsori: {args.manifest}:{problem.line}: {problem.message}", file=sys.stderr)
        print(f"malsori: {len(problems)} row(s) could not be scored", file=sys.stderr)
        return 1
    return 0


def save_together(files: list[tuple[str, str | bytes]]) -> None:
    """Write the report (and the plot) together or not at all, each atomically: a plot
    that cannot be written no longer leaves the old one beside a new report. When they
    cannot be written (a full disk, a size limit), an evaluation that may have taken hours
    is saved under the system's temporary folder and the error says where (as
    ``transcribe -o`` and ``diarize -o`` do)."""
    if not files:
        return
    try:
        for path, _ in files:
            make_parent(path)
        atomic_write_many([(Path(path), content) for path, content in files])
    except OutputError as exc:
        saved = rescue_texts([(Path(path).name, content) for path, content in files])
        raise type(exc)(f"{exc}; {saved}") from exc
    for path, _ in files:
        print(f"wrote {path}", file=sys.stderr)


#: The report's formats by name (an audio name such as -o talk.wav got Markdown).
REPORT_SUFFIXES = (".md", ".markdown", ".txt", ".json", ".csv")


def _plot_path(args: argparse.Namespace) -> str | None:
    """Where ``--plot`` goes (next to ``-o``, or eval-plot.png); the report's format is
    checked on the way, before any work."""
    from ..errors import OptionsError

    if args.output and Path(args.output).suffix.lower() == ".png":  # others: Markdown
        raise OptionsError(
            f"-o {args.output}: the report is text (.md, .json or .csv); the plot is --plot"
        )
    if args.plot is None:
        return None
    plot = args.plot or (
        str(Path(args.output).with_suffix(".png")) if args.output else "eval-plot.png"
    )
    if Path(plot).suffix.lower() != ".png":
        raise OptionsError(f"--plot {plot}: the plot is a PNG image; give a name ending in .png")
    require_extra("eval", "--plot", ("matplotlib",))  # before the work, not after it
    return str(plot)


def run(args: argparse.Namespace) -> int:
    if args.output == "-":  # the Markdown report on stdout, as without -o
        args.output = None
    if args.diarization:
        return run_diarization(args)
    require_extra("eval", "'malsori eval'", ("jiwer", "whisper_normalizer"))
    from ..evaluate import EvalConfig, evaluate, read_manifest
    from ..evaluate.report import (
        render_markdown,
        render_report,
        speed_vs_error_png,
        summary_rows,
    )
    from ..options import normalize_language

    plot = _plot_path(args)
    outputs = [(flag, path) for flag, path in (("-o", args.output), ("--plot", plot)) if path]
    rows, problems = read_manifest(args.manifest)
    # never the manifest, nor an audio file it lists (even with --overwrite)
    check_outputs(outputs, [args.manifest, *(r.path for r in rows)], overwrite=args.overwrite)
    if args.output and Path(args.output).suffix.lower() not in REPORT_SUFFIXES:
        raise OptionsError(
            f"-o {args.output}: cannot tell the report format; use .md, .json or .csv "
            "(or .txt for Markdown)"
        )
    if args.language:
        lang = normalize_language(args.language)
        rows = [r for r in rows if r.language == lang]
    if args.limit is not None:
        rows = rows[: args.limit]
    if not rows:
        for problem in problems:
            print(f"malsori: {args.manifest}: {problem}", file=sys.stderr)
        raise ManifestError(f"{args.manifest}: no usable rows to evaluate")
    configs = [
        EvalConfig(
            model=m,
            compute_type=c,
            beam_size=b,
            batch_size=n,
            device=args.device,
            threads=args.threads,
        )
        for m, c, b, n in itertools.product(
            args.model or ["base"],
            args.compute_type or [DEFAULT_COMPUTE_TYPE],
            args.beam_size or [EvalConfig.beam_size],
            args.batch_size or [EvalConfig.batch_size],
        )
    ]

    def progress(cfg: EvalConfig, row: Any, utt: Any) -> None:
        if args.quiet:
            return
        status = "skipped" if utt is None else f"WER {utt.score.wer:.1%} CER {utt.score.cer:.1%}"
        print(f"[{cfg.label}] line {row.line} {row.path.name}: {status}", file=sys.stderr)

    results = evaluate(rows, configs, progress=progress)
    # The summary first: it is on the screen even when the report cannot be written.
    for r in summary_rows(results):
        n = r["utterances"]
        print(
            f"{r['config']} [{r['language']}]: WER {r['wer']:.2%}  CER {r['cer']:.2%}  "
            f"RTF {r['rtf']:.3f}  ({n} utterance{'' if n == 1 else 's'})",
            file=sys.stderr,
        )
    files: list[tuple[str, str | bytes]] = []
    if args.output:
        files.append((args.output, render_report(args.output, results, problems, args.manifest)))
    else:
        sys.stdout.write(render_markdown(results, problems, args.manifest))
    plot_failed = None
    if plot is not None:
        try:
            files.append((plot, speed_vs_error_png(results)))
        except Exception as exc:  # the report is worth more than its picture: still written
            plot_failed = f"{plot}: the plot could not be drawn ({type(exc).__name__}: {exc})"
    save_together(files)
    if plot_failed is not None:
        print(f"malsori: error: {plot_failed}", file=sys.stderr)
        return 1
    skipped = len(problems) + sum(len(r.skipped) for r in results)
    if skipped:
        for problem in problems:
            print(f"malsori: {args.manifest}: {problem}", file=sys.stderr)
        for res in results:  # rows read but not transcribed (undecodable audio, ...)
            for problem in res.skipped:
                print(f"malsori: [{res.config.label}] {args.manifest}: {problem}", file=sys.stderr)
        print(
            f"malsori: {skipped} row(s) could not be scored (listed in the report)", file=sys.stderr
        )
        return 1
    return 0
