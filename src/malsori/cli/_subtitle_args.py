"""The cue flags shared by ``malsori transcribe``, ``malsori batch`` and
``malsori subtitles check``; they map one to one onto :class:`malsori.subtitles.SubtitleOptions`."""

from __future__ import annotations

import argparse

from ..subtitles.rules import (
    ENGLISH_CPS,
    ENGLISH_LINE_WIDTH,
    KOREAN_CPS,
    KOREAN_LINE_WIDTH,
    MAX_CUE_DURATION,
    MAX_LINE_COUNT,
    MIN_CUE_DURATION,
    SPLIT_ON_PAUSE,
    SubtitleOptions,
)


def add_subtitle_arguments(p: argparse.ArgumentParser, *, highlight: bool = True) -> None:
    """Add the cue flags (defaults: the Netflix numbers of the transcript's language)."""
    g = p.add_argument_group("subtitles (srt, vtt)")
    g.add_argument(
        "--max-line-width",
        type=float,
        default=None,
        metavar="N",
        help=f"characters per line [default: {ENGLISH_LINE_WIDTH} for English, "
        f"{KOREAN_LINE_WIDTH} for Korean (Latin letters, spaces, punctuation count half)]",
    )
    g.add_argument(
        "--max-line-count",
        type=int,
        default=None,
        metavar="N",
        help=f"lines per cue [default: {MAX_LINE_COUNT}]",
    )
    g.add_argument(
        "--max-cue-duration",
        type=float,
        default=None,
        metavar="SEC",
        help=f"longest cue [default: {MAX_CUE_DURATION:g}]",
    )
    g.add_argument(
        "--min-cue-duration",
        type=float,
        default=None,
        metavar="SEC",
        help=f"shortest cue [default: 5/6 = {MIN_CUE_DURATION:.3f}]",
    )
    g.add_argument(
        "--max-cps",
        type=float,
        default=None,
        metavar="N",
        help=f"reading speed, characters per second [default: {ENGLISH_CPS:g} for English, "
        f"{KOREAN_CPS:g} for Korean]",
    )
    g.add_argument(
        "--split-on-pause",
        type=float,
        default=None,
        metavar="SEC",
        help=f"a silence longer than this always ends a cue [default: {SPLIT_ON_PAUSE:g}]",
    )
    if highlight:
        g.add_argument(
            "--highlight-words",
            action="store_true",
            help="underline each word as it is spoken (karaoke-style, as openai-whisper)",
        )


def subtitle_options_from_args(args: argparse.Namespace) -> SubtitleOptions:
    """The :class:`SubtitleOptions` of parsed flags (validated: an error names the flag)."""
    return SubtitleOptions(
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        max_cue_duration=args.max_cue_duration,
        min_cue_duration=args.min_cue_duration,
        max_cps=args.max_cps,
        split_on_pause=args.split_on_pause,
        highlight_words=bool(getattr(args, "highlight_words", False)),
    )


__all__ = ["add_subtitle_arguments", "subtitle_options_from_args"]
