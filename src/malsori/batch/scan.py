"""Walk an input directory: recursive, glob-filtered, symlink loops and unreadable entries
handled (reported, not fatal)."""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

#: Extensions taken by default (anything FFmpeg decodes can be added with --glob).
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".flac",
        ".mp3",
        ".m4a",
        ".aac",
        ".ogg",
        ".oga",
        ".opus",
        ".wma",
        ".webm",
        ".mp4",
        ".mkv",
        ".mov",
        ".avi",
        ".amr",
        ".aiff",
        ".aif",
        ".aifc",
        ".m4b",  # audiobooks
        ".mka",
        ".caf",  # Apple voice memos
        ".ts",
        ".mts",
        ".ac3",
        ".eac3",
        ".mp2",
        ".mpga",
        ".au",
        ".wv",
        ".spx",
        ".flv",
        ".wave",
        ".3gp",
        ".m4v",
        ".weba",
        ".dts",
        ".ape",
    }
)


@dataclass
class ScanResult:
    files: list[tuple[str, Path]] = field(default_factory=list)  # (relative path, path)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    skipped: int = 0  # files left out by the pattern or the extension list (counted, not silent)
    siblings: list[str] = field(default_factory=list)  # audio files a --glob left out


def _matches(pattern: str, rel: str, name: str) -> bool:
    """fnmatch on the relative path or the name; ``**/x`` also matches ``x`` at the top."""
    # one Unicode normal form on both sides: a Korean name from macOS is decomposed (NFD)
    pattern = unicodedata.normalize("NFC", pattern)
    rel, name = unicodedata.normalize("NFC", rel), unicodedata.normalize("NFC", name)
    candidates = [pattern]
    while candidates[-1].startswith("**/"):
        candidates.append(candidates[-1][3:])
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in candidates)


def _text_name(rel: str) -> str | None:
    """None when the name is not valid UTF-8 (the job database stores text)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return rel


def scan(
    root: str | Path, pattern: str | None = None, exclude: str | Path | None = None
) -> ScanResult:
    """Files under ``root`` matching ``pattern`` (fnmatch on the relative path, e.g.
    ``*.mp3`` or ``lectures/**/*.wav``) or, without a pattern, known audio/video extensions.
    ``exclude`` (the output directory, when it lies inside ``root``) is not walked: a job never
    takes its own outputs for inputs."""
    base = Path(root)
    result = ScanResult()
    seen_dirs: set[tuple[int, int]] = set()
    if exclude is not None and Path(exclude).is_dir():
        st_out = os.stat(exclude)
        seen_dirs.add((st_out.st_dev, st_out.st_ino))

    def unreadable_dir(exc: OSError) -> None:  # reported, never skipped silently
        where = Path(exc.filename or base)
        rel = where.relative_to(base).as_posix() if where != base else "."
        rel = os.fsencode(rel).decode("utf-8", "backslashreplace")
        result.unreadable.append((f"{rel}/", f"cannot read directory: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(base, followlinks=True, onerror=unreadable_dir):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # a symlink loop (or the same directory twice)
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        # hidden folders (.git, .Trash-1000, .AppleDouble, .snapshot) are not walked, as hidden
        # files are not taken
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(base).as_posix()
            if name.startswith("."):
                continue
            audio = path.suffix.lower() in AUDIO_EXTENSIONS
            if pattern is not None and not _matches(pattern, rel, name):
                result.skipped += 1
                if audio and _text_name(rel):
                    result.siblings.append(rel)
                continue
            if pattern is None and not audio:
                result.skipped += 1
                continue
            if _text_name(rel) is None:
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                result.unreadable.append((shown, "the file name is not valid UTF-8; rename it"))
                continue
            try:
                if not path.is_file():
                    result.unreadable.append((rel, "not a regular file (broken link?)"))
                    continue
                with open(path, "rb"):
                    pass
            except OSError as exc:
                result.unreadable.append((rel, f"cannot read: {exc.strerror or exc}"))
                continue
            result.files.append((rel, path))
    return result
