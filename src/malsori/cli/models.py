"""``malsori models``: every known model with its offline status, size, path and checksum;
``models add DIR`` / ``models remove NAME`` register your own models; ``--verify`` re-hashes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list models and whether they are available offline; add or remove your own",
        description="List every model name with its status, size, checksum state and path. "
        "'malsori models add DIR' registers a CTranslate2 model directory under a name "
        "(a link in the user models directory) and records the sha256 of its files; "
        "'malsori models remove NAME' removes a registration (never the files).",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--verify",
        action="store_true",
        help="hash every model file again (ignore the size/mtime cache); exit 1 if any fails",
    )
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="register a model directory under a name, recording its checksums",
        description="Register the CTranslate2 model directory DIR as NAME (default: the "
        "directory's name): its model.bin and other model files are hashed into "
        "DIR/malsori_checksums.json, checked on every load (re-hashed when a file's size or "
        "mtime changes), and a link NAME -> DIR is put in the user models directory, so "
        "'--model NAME' finds it. A registration whose directory was deleted is replaced.",
    )
    add.add_argument("directory", type=Path, metavar="DIR")
    add.add_argument("--name", default=None, help="the model's name [the directory's name]")
    add.set_defaults(func=run_add)
    remove = actions.add_parser(
        "remove",
        help="remove a registration (the model's files stay where they are)",
        description="Remove the registration NAME from the user models directory. The model "
        "directory it points to is not touched.",
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=run_remove)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    rows = list_models(rehash=args.verify)
    failed = [r for r in rows if r.status == "broken"]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "status": r.status,
                        "path": str(r.path) if r.path else None,
                        "size": r.size,
                        "checksum": r.checksum,
                        "detail": r.detail,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    else:
        header = ("model", "status", "size", "checksum", "path")
        table = [header] + [
            (
                r.name,
                r.status,
                _size(r.size),
                r.checksum,
                (f"{r.path}  ({r.detail})" if r.detail else str(r.path))
                if r.path
                else r.detail or "-",
            )
            for r in rows
        ]
        widths = [max(_width(row[i]) for row in table) for i in range(4)]
        for row in table:
            cells = zip(row[:4], widths, strict=True)
            print("  ".join(c + " " * (w - _width(c)) for c, w in cells) + "  " + row[4])
    if not args.verify:
        return 0
    checked = [r for r in rows if r.checksum == "ok"]
    unverified = [r.name for r in rows if r.checksum == "unverified"]
    if unverified:
        print(
            f"malsori: {len(unverified)} model(s) have no recorded checksums and were not "
            f"checked: {', '.join(unverified)} (malsori models add DIR records them)",
            file=sys.stderr,
        )
    if failed:
        names = ", ".join(r.name for r in failed)
        print(f"malsori: error: {len(failed)} model(s) failed: {names}", file=sys.stderr)
        return 1
    print(
        f"verified: {len(checked)} model(s) hashed again, all match their checksums",
        file=sys.stderr,
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from ..models import HASHED_FILES, register_model

    reg = register_model(args.directory, args.name)
    files = [f for f in HASHED_FILES if (reg.target / f).is_file()]
    if reg.unchanged and not reg.link.is_symlink():
        print(f"{reg.name!r} is stored in the user models directory: {reg.link}")
    elif reg.unchanged:
        print(f"{reg.name!r} was already registered: {reg.link} -> {reg.target}")
    else:
        replaced = f" (replacing the registration of {reg.replaced}, now gone)"
        print(
            f"registered {reg.name!r}: {reg.link} -> {reg.target}"
            + (replaced if reg.replaced else "")
        )
    print(f"checksums of {', '.join(files)}: {reg.checksums}")
    print(f"use it with --model {reg.name}; undo with: malsori models remove {reg.name}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..models import remove_model

    target = remove_model(args.name)
    print(f"removed {args.name!r} (it pointed to {target}; that directory is untouched)")
    return 0


def _width(text: str) -> int:
    """Terminal columns: Hangul and other wide characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
