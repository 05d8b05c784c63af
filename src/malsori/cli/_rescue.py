"""A transcript that could not be written where asked is saved elsewhere, never dropped."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import MalsoriError
from ..transcript import Transcript
from ..writers import write_transcript


def note(message: str) -> None:
    """A line on stderr, unless the terminal is gone (SIGHUP): the files still get written."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr)


def rescue(
    transcript: Transcript,
    *,
    stem: str = "transcript",
    formats: Sequence[str] = ("txt", "json"),
) -> str:
    """Save ``transcript`` into a new folder under the system's temporary directory, in the
    ``formats`` asked (txt first, then each other that fits); what to tell the user. As a
    last resort its text goes to stderr: finished work is never lost to a failed write."""
    saved: list[Path] = []
    problem: Exception | None = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="malsori-"))
    except OSError as exc:
        problem = exc
    else:
        for fmt in sorted(set(formats) | {"txt"}, key=lambda f: f != "txt"):
            try:
                saved += write_transcript(transcript, folder, stem, [fmt])
            except (MalsoriError, OSError) as exc:
                problem = exc
    if not saved:
        note(f"malsori: the transcript could not be saved anywhere ({problem}); its text:")
        note(transcript.text.strip())
        return "the transcript's text is printed above"
    return f"the transcript was saved to {', '.join(str(p) for p in saved)} instead"


def rescue_texts(files: Sequence[tuple[str, str | bytes]]) -> str:
    """``rescue`` for results that are already text (``diarize``'s RTTM and JSON, ``eval``'s
    report) or bytes (``eval``'s plot): each ``(file name, content)`` goes into a new folder
    under the temporary directory; text that cannot be saved there either is printed on
    stderr. What to tell the user."""
    folder: Path | None = None
    with contextlib.suppress(OSError):
        folder = Path(tempfile.mkdtemp(prefix="malsori-"))
    saved: list[str] = []
    for name, text in files:
        if folder is not None:
            try:
                if isinstance(text, bytes):
                    (folder / name).write_bytes(text)
                else:
                    (folder / name).write_text(text, encoding="utf-8")
                saved.append(str(folder / name))
                continue
            except OSError:
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
        if isinstance(text, bytes):  # an image: nothing to print
            note(f"malsori: {name} could not be saved anywhere")
            continue
        note(f"malsori: {name} could not be saved anywhere; its text:")
        note(text.rstrip())
    if not saved:
        return "the result is printed above"
    rest = "; the rest is printed above" if len(saved) < len(files) else ""
    return f"the result was saved to {', '.join(saved)} instead{rest}"
