"""``malsori subtitles check FILE.srt|vtt...``: report every subtitle rule a file breaks.

One line per broken rule, with the cue number; exit status 1 when any file breaks a rule,
2 when a file cannot be read, 0 when every file is clean.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from ..errors import MalsoriError
from ..subtitles.lint import RULES, guess_language, lint_events, read
from ..subtitles.rules import Limits
from ._args import add_subtitle_arguments, subtitle_options_from_args


def register(sub: Any) -> None:
    """Add ``subtitles`` and its ``check`` sub-command."""
    p = sub.add_parser(
        "subtitles",
        help="check subtitle files against the subtitle rules",
        description="Subtitle tools.",
    )
    inner = p.add_subparsers(dest="subtitles_command", metavar="COMMAND", required=True)
    check = inner.add_parser(
        "check",
        help="report every rule an srt/vtt file breaks",
        description="Check .srt/.vtt files against the subtitle rules (Netflix Timed Text "
        "Style Guide numbers, per language): "
        + "; ".join(f"{name}: {what}" for name, what in RULES.items())
        + ". Exit status 1 when a rule is broken.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help=".srt or .vtt files")
    check.add_argument(
        "--language",
        default="auto",
        help="language whose limits apply (en, ko, ja, zh, ...); auto guesses from the "
        "script (Hangul -> ko, kana -> ja, Han -> zh, else en) [default: auto]",
    )
    add_subtitle_arguments(check, highlight=False)
    check.set_defaults(func=run)


def _by_script(options: Any, used: dict[str, Limits], ev: Any) -> Limits:
    """A cue's limits by the script of its text (each kind recorded in ``used``)."""
    lim = options.limits(guess_language(ev.lines))
    return used.setdefault(lim.rules.name, lim)


def run(args: argparse.Namespace) -> int:
    """Lint each file; print the violations; 1 if any, 2 if a file could not be read."""
    options = subtitle_options_from_args(args)
    status = 0
    for path in args.files:
        try:
            events = read(path)
        except MalsoriError as exc:
            print(f"malsori: error: {exc}", file=sys.stderr)
            status = 2
            continue
        if args.language == "auto":  # each cue by its script: a file may change language
            used: dict[str, Limits] = {}
            violations = lint_events(events, functools.partial(_by_script, options, used))
        else:
            lim = options.limits(args.language)
            used = {lim.rules.name: lim}
            violations = lint_events(events, lim)
        for v in violations:  # FILE:LINE: as compilers say it (an editor jumps there)
            print(f"{path}:{v.line}: {v}" if v.line else f"{path}: {v}")
        summary = (
            f"{path}: {len(violations)} violation(s) in {len(events)} cue(s)"
            if violations
            else f"{path}: OK, {len(events)} cue(s)"
        )
        described = "; ".join(
            f"{name} limits: {lim.max_line_width:g} per line, {lim.max_line_count} lines, "
            f"{lim.max_cps:g} cps"
            for name, lim in used.items()
        )
        print(f"{summary} ({described or 'no cues'})")
        if violations and status == 0:
            status = 1
    return status


__all__ = ["register", "run"]
