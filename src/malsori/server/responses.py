"""Rendering a transcript as OpenAI does: ``json``, ``text``, ``verbose_json`` (segments
numbered from 0, the language's full name, ``usage``), ``srt``/``vtt`` (the CLI's cues), and
the server-sent events of ``stream=true``."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..subtitles.cues import build_cues
from ..transcript import Segment, Transcript
from ..writers import WRITERS, cues, subtitle_options
from .languages import language_name


def usage(result: Transcript) -> dict[str, Any]:
    """Whisper-1 bills by duration: whole seconds, rounded up."""
    # Rounded up, as OpenAI bills (a 1-sample file is 1 s, not 0); the micro-second taken off
    # keeps an 11 s file whose float duration is 11.0000001 at 11.
    return {"type": "duration", "seconds": max(0, math.ceil(result.duration - 1e-6))}


def segment_body(index: int, s: Segment) -> dict[str, Any]:
    return {
        "id": index,
        "seek": s.seek,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature or 0.0,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
        # not in OpenAI's segment: the language this segment was decoded in (malsori's
        # pipeline decides it per window; a mixed recording changes it), as a full name
        **({"language": language_name(s.language)} if s.language else {}),
        # not in OpenAI's verbose segment: who spoke it (diarize=true)
        **({"speaker": s.speaker} if s.speaker else {}),
        # not in OpenAI's either: the quality flags the CLI warns about (sampled,
        # low_confidence, repetition, little_text); a client saw none of them
        **({"flags": list(s.flags)} if s.flags else {}),
    }


def verbose(result: Transcript, task: str, granularities: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language_name(result.language),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    # OpenAI: segments unless only word granularity was asked for; words only when asked.
    if granularities != ("word",):
        body["segments"] = [segment_body(i, s) for i, s in enumerate(result.segments)]
    if "word" in granularities:
        body["words"] = [
            {
                "word": w.word.strip(),
                "start": w.start,
                "end": w.end,
                **({"speaker": w.speaker} if w.speaker else {}),
            }
            for w in result.words
        ]
    if task == "transcribe":
        body["usage"] = usage(result)
    return body


def diarized(result: Transcript) -> dict[str, Any]:
    """OpenAI's ``diarized_json`` (``TranscriptionDiarized``): the text, and segments of one
    speaker each with ``type``, ``id``, ``start``, ``end``, ``text``, ``speaker``."""
    return {
        "task": "transcribe",
        "duration": round(result.duration, 3),
        "text": result.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{i}",
                "start": s.start,
                "end": s.end,
                "text": s.text.strip(),
                "speaker": s.speaker or "",
            }
            for i, s in enumerate(result.segments)
        ],
        "usage": usage(result),
    }


def speaker_cues(result: Transcript) -> list[dict[str, Any]]:
    """The subtitle cues of a diarized ``result``, each with its ``speaker``."""
    return [
        {"start": cue.start, "end": cue.end, "text": cue.text, "speaker": cue.speaker}
        for cue in build_cues(result, subtitle_options())
    ]


def done_extras(result: Transcript) -> dict[str, Any]:
    """What the stream's done event adds for a diarized transcript (the page's speaker
    colours and names): the speakers, the segments with theirs, cues with speakers."""
    if not (result.speakers or result.diarized):
        return {}
    return {
        "speakers": result.speakers,
        "segments": diarized(result)["segments"],
        "cues": speaker_cues(result),
    }


def render(result: Transcript, fmt: str, task: str, granularities: tuple[str, ...]) -> Response:
    """The response in ``fmt``. Not OpenAI's: when the audio needed repairs (damaged
    packets, gaps, inverted stereo), the JSON formats carry ``warnings`` (the messages) and
    every format the ``X-Malsori-Warnings`` header (how many)."""
    response = _render(result, fmt, task, granularities)
    if result.warnings:
        response.headers["X-Malsori-Warnings"] = str(len(result.warnings))
    return response


def _render(result: Transcript, fmt: str, task: str, granularities: tuple[str, ...]) -> Response:
    warnings = {"warnings": result.warnings} if result.warnings else {}
    if fmt == "diarized_json":
        return JSONResponse({**diarized(result), **warnings})
    if fmt == "text" and result.speakers:
        return PlainTextResponse(WRITERS["txt"](result))
    if fmt == "json":
        body: dict[str, Any] = {"text": result.text}
        if task == "transcribe":
            body["usage"] = usage(result)
        return JSONResponse({**body, **warnings})
    if fmt == "verbose_json":
        return JSONResponse({**verbose(result, task, granularities), **warnings})
    if fmt == "text":
        return PlainTextResponse(result.text + "\n")
    media = "text/vtt" if fmt == "vtt" else "text/plain"
    return Response(WRITERS[fmt](result), media_type=f"{media}; charset=utf-8")


def cue_list(result: Transcript) -> list[dict[str, Any]]:
    """The subtitle cues of ``result`` as the CLI's srt/vtt writers cut them."""
    return [{"start": a, "end": b, "text": t} for a, b, t in cues(result)]


def segment_event(index: int, segment: Segment) -> dict[str, Any]:
    """A streamed segment (the page's progress bar reads its ``end``), with provisional
    subtitle cues (long batched windows split at words, by the segment's language's
    rules). The final cues, cut over the whole transcript, come with the done event."""
    one = Transcript([segment], segment.language or "", 0.0, segment.end)
    return {
        "id": index,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "cues": cue_list(one),
    }


def sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
