"""Manifests: the TSV that lists audio clips with their reference text, read by ``malsori
eval`` and ``malsori finetune`` alike.

A header row, then one clip per row; columns path, language, reference (duration_s, source,
license, speaker, id optional); paths relative to the manifest. Problems are collected with
their line numbers, never dropped silently; a manifest that cannot be used at all is a
:class:`~malsori.errors.ManifestError`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError
from .options import language_codes

__all__ = ["ManifestError", "ManifestProblem", "ManifestRow", "read_manifest"]

REQUIRED = ("path", "language", "reference")
OPTIONAL = ("duration_s", "duration", "source", "license", "speaker", "id")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: Path
    language: str
    reference: str


@dataclass(frozen=True)
class ManifestProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def read_manifest(
    path: str | Path, *, default_language: str | None = None
) -> tuple[list[ManifestRow], list[ManifestProblem]]:
    """Parse ``path``; returns the usable rows and one problem per unusable row or column.
    With ``default_language`` the language column may be absent (every row gets it)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest file")
    base = p.parent
    with open(p, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header:
            raise ManifestError(f"{p}: empty manifest (a header row is required)")
        columns = [h.strip() for h in header]
        required = REQUIRED if default_language is None else ("path", "reference")
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(
                f"{p}: line 1: missing column(s) {', '.join(missing)} "
                f"(required: {', '.join(required)}; found: {', '.join(columns)})"
            )
        problems = [
            ManifestProblem(
                1, f"unknown column {c!r} (ignored; known: {', '.join(REQUIRED + OPTIONAL)})"
            )
            for c in columns
            if c not in REQUIRED + OPTIONAL
        ]
        codes = set(language_codes())
        rows: list[ManifestRow] = []
        for line, fields in enumerate(reader, start=2):
            if not any(f.strip() for f in fields):
                continue
            if len(fields) > len(columns):
                problems.append(
                    ManifestProblem(
                        line, f"expected {len(columns)} tab-separated fields, got {len(fields)}"
                    )
                )
                continue
            fields += [""] * (len(columns) - len(fields))  # trailing optional columns may be absent
            rec = dict(zip(columns, (f.strip() for f in fields), strict=True))
            rec.setdefault("language", default_language or "")
            audio = base / rec["path"]
            if not rec["path"]:
                problems.append(ManifestProblem(line, "empty path"))
            elif not audio.is_file():
                problems.append(ManifestProblem(line, f"audio file not found: {audio}"))
            elif not rec["reference"]:
                problems.append(ManifestProblem(line, f"empty reference for {rec['path']}"))
            elif rec["language"].lower() not in codes:
                problems.append(
                    ManifestProblem(
                        line, f"unknown language code {rec['language']!r} for {rec['path']}"
                    )
                )
            else:
                rows.append(ManifestRow(line, audio, rec["language"].lower(), rec["reference"]))
    return rows, problems
