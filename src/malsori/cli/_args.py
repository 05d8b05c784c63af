"""Flags shared by several commands, each group mapping one to one onto a library object:
model flags -> :class:`~malsori.engine.EngineConfig` (transcribe, batch, live), decoding
flags -> :class:`~malsori.DecodeOptions` (transcribe, batch), cue flags ->
:class:`~malsori.subtitles.SubtitleOptions` (transcribe, batch, ``subtitles check``).
The choices are the library's constants, so the CLI cannot drift from what it accepts."""

from __future__ import annotations

import argparse

from ..engine import DEFAULT_COMPUTE_TYPE, DEVICES, EngineConfig
from ..options import TASKS, DecodeOptions
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


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Engine flags shared by every command that loads a model."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="base",
        help="model name (tiny.en, base, ..., large-v3) or CTranslate2 directory [default: base]",
    )
    g.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="auto = CUDA when available, else CPU [default: auto]",
    )
    g.add_argument(
        "--compute-type",
        default=DEFAULT_COMPUTE_TYPE,
        help="int8, int8_float32, int8_float16, float16, float32 or auto "
        f"[default: {DEFAULT_COMPUTE_TYPE}: int8 on a CPU, float16 on CUDA]",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads [default: number of physical cores]",
    )
    g.add_argument(
        "--allow-download",
        action="store_true",
        help="allow a one-time Hugging Face download when the model is not "
        "available offline (ignored when HF_HUB_OFFLINE is set)",
    )


def add_decode_arguments(p: argparse.ArgumentParser) -> None:
    """Decoding flags; they map one to one onto :class:`malsori.DecodeOptions`."""
    g = p.add_argument_group("decoding")
    g.add_argument(
        "--language",
        default="auto",
        help="language code (en, ko, ...) or auto-detect [default: auto]",
    )
    g.add_argument("--task", default="transcribe", choices=TASKS)
    g.add_argument(
        "--beam-size",
        type=int,
        default=DecodeOptions.beam_size,
        metavar="N",
        help="beam search width; 1 = greedy; 0 = automatic (greedy, beam 5 for Korean) "
        f"[default: {DecodeOptions.beam_size}]",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=DecodeOptions.batch_size,
        metavar="N",
        help="N > 1: malsori's long-form pipeline, up to N windows per decoder call "
        "(docs/pipeline.md); 1 = faster-whisper's sequential decoding "
        f"[default: {DecodeOptions.batch_size}]",
    )
    g.add_argument("--word-timestamps", action="store_true", help="add per-word timings")
    g.add_argument("--vad", action="store_true", help="skip silence with Silero VAD")
    g.add_argument(
        "--initial-prompt",
        default=None,
        metavar="TEXT",
        help="text to condition the first window on (names, spelling)",
    )
    g.add_argument(
        "--hotwords", default=None, metavar="TEXT", help="words to bias decoding towards"
    )


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The :func:`add_model_arguments` flags as an :class:`~malsori.engine.EngineConfig`."""
    return EngineConfig(
        model=args.model,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        allow_download=getattr(args, "allow_download", False),
    )


def decode_options_from_args(args: argparse.Namespace) -> DecodeOptions:
    return DecodeOptions(
        language=args.language,
        task=args.task,
        beam_size=args.beam_size,
        word_timestamps=args.word_timestamps,
        vad_filter=args.vad,
        initial_prompt=args.initial_prompt,
        hotwords=args.hotwords,
        batch_size=args.batch_size,
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


__all__ = ["add_subtitle_arguments", "description", "subtitle_options_from_args"]


def description(doc: str | None) -> str:
    """A command module's docstring as its ``--help`` text (without reST's ``literal`` marks,
    which a terminal shows as they are)."""
    return (doc or "").replace("``", "")
