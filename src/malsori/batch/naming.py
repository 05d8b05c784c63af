"""Output names of a batch job: every input gets its own, never another input's.

The rule (documented in README "What malsori guarantees"):

- ``dir/name.ext`` writes ``OUT/dir/name.<format>`` — the input tree mirrored under OUT;
- when two inputs in one folder share a stem (``m.wav`` and ``m.mp3``; compared without
  case and in one Unicode normal form, as case-insensitive disks and macOS compare names: a
  Korean name typed on Linux is composed (NFC), the same name from macOS decomposed (NFD)),
  each keeps its extension: ``m.wav.txt``, ``m.mp3.txt``; so does an input beside a folder
  named like one of its outputs (``x.wav`` beside a folder ``x.txt/``);
- names are computed over every file the job has ever seen (its database), not only this
  run's ``--glob``, so a rerun with another pattern never renames outputs back and forth.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePosixPath

from ..writers import FORMATS


def _key(name: str) -> str:
    """Stems are compared without case (as before) and in one Unicode normal form."""
    return unicodedata.normalize("NFC", name).casefold()


def output_bases(rels: Iterable[str]) -> dict[str, str]:
    """Map each input path (relative, POSIX) to its output base (relative, no format
    extension). Inputs sharing a stem in one folder keep their full name; the step repeats
    until no two bases in a folder collide (``m.wav`` vs ``m.wav.mp3``)."""
    paths = sorted(set(rels))
    # The input's folders are mirrored under OUT: a folder named like an output (x.txt/
    # beside x.wav) would take that output's place.
    folders: dict[str, set[str]] = defaultdict(set)
    for rel in paths:
        for parent in PurePosixPath(rel).parents:
            if parent.name:
                folders[str(parent.parent)].add(_key(parent.name))
    full: set[str] = set()  # inputs that use their full name
    while True:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for rel in paths:
            p = PurePosixPath(rel)
            name = p.name if rel in full else p.stem
            groups[(str(p.parent), _key(name))].append(rel)
        clashing = [
            rel
            for members in groups.values()
            if len(members) > 1
            for rel in members
            if rel not in full
        ]
        clashing += [
            rel
            for rel in paths
            if rel not in full
            and any(
                f"{_key(PurePosixPath(rel).stem)}.{fmt}" in folders[str(PurePosixPath(rel).parent)]
                for fmt in FORMATS
            )
        ]
        if not clashing:
            break
        full.update(clashing)
    out = {}
    for rel in paths:
        p = PurePosixPath(rel)
        out[rel] = str(p.parent / (p.name if rel in full else p.stem))
    return out


def lookalikes(bases: dict[str, str]) -> dict[str, str]:
    """Inputs whose output bases differ only in Unicode normal form after the rule above
    (``한.wav`` composed and ``한.wav`` decomposed: two files on Linux that look the same,
    and one name on macOS or a normalizing share). Maps each such input to one of the
    others. (Names that differ in case are left alone: they are distinct names on Linux,
    and jobs with ``Rec/`` and ``rec/`` folders worked before.)"""
    by_key: dict[str, list[str]] = defaultdict(list)
    for rel, base in bases.items():
        by_key[unicodedata.normalize("NFC", base)].append(rel)
    return {
        rel: next(o for o in members if o != rel)
        for members in by_key.values()
        if len(members) > 1
        for rel in members
    }
