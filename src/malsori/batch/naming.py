"""Output names of a batch job: every input gets its own, never another input's.

The rule (documented in README "What malsori guarantees"):

- ``dir/name.ext`` writes ``OUT/dir/name.<format>`` — the input tree mirrored under OUT;
- when two inputs in one folder share a stem (``m.wav`` and ``m.mp3``; compared without
  case, as on case-insensitive disks), each keeps its extension: ``m.wav.txt``, ``m.mp3.txt``;
- names are computed over every file the job has ever seen (its database), not only this
  run's ``--glob``, so a rerun with another pattern never renames outputs back and forth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePosixPath


def output_bases(rels: Iterable[str]) -> dict[str, str]:
    """Map each input path (relative, POSIX) to its output base (relative, no format
    extension). Inputs sharing a stem in one folder keep their full name; the step repeats
    until no two bases in a folder collide (``m.wav`` vs ``m.wav.mp3``)."""
    paths = sorted(set(rels))
    full: set[str] = set()  # inputs that use their full name
    while True:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for rel in paths:
            p = PurePosixPath(rel)
            name = p.name if rel in full else p.stem
            groups[(str(p.parent), name.casefold())].append(rel)
        clashing = [
            rel
            for members in groups.values()
            if len(members) > 1
            for rel in members
            if rel not in full
        ]
        if not clashing:
            break
        full.update(clashing)
    out = {}
    for rel in paths:
        p = PurePosixPath(rel)
        out[rel] = str(p.parent / (p.name if rel in full else p.stem))
    return out


def colliding_inputs(targets: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """``{output path: [inputs]}`` -> the outputs that more than one input would write."""
    return [(path, names) for path, names in targets.items() if len(names) > 1]
