"""``malsori models``: every known model with its offline status, size, path and checksum."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list models and whether they are available offline")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"


def run(args: argparse.Namespace) -> int:
    from ..models import list_models

    rows = list_models()
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
        return 0
    header = ("model", "status", "size", "checksum", "path")
    table = [header] + [
        (
            r.name,
            r.status,
            _size(r.size),
            r.checksum,
            (f"{r.path}  ({r.detail})" if r.detail else str(r.path)) if r.path else r.detail or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0
