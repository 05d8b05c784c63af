"""``malsori predict DIR DATA.csv``: the regression recipe's second half, predictions of a
model saved by ``malsori train regression`` (tabular data, not speech)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._extras import require_extra
from ._outputs import check_outputs, make_parent

HELP = "the regression recipe, part 2: predict a CSV with a 'malsori train regression' model"
DESCRIPTION = (
    "Part 2 of the regression recipe (part 1 is 'malsori train regression'): add a "
    "predicted_TARGET column to DATA.csv with the model saved in DIR. Not for speech: "
    "transcription is 'malsori transcribe'."
)


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help=HELP, description=DESCRIPTION)
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("data", metavar="DATA.csv")
    p.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE.csv",
        help="write here (atomically) instead of stdout",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_extra("train", "'malsori predict'", ("torch",))
    from .._atomic import atomic_write_text
    from ..train.regression import predict_csv, render_predictions

    if args.output == "-":  # stdout, as without -o (it wrote a file named "-")
        args.output = None
    if args.output:
        check_outputs([("--output", args.output)], [args.data], overwrite=args.overwrite)
    table, pred, target = predict_csv(args.model_dir, args.data)
    if f"predicted_{target}" in table.columns:
        print(
            f"malsori: {args.data} has a predicted_{target} column already: its values are "
            "replaced",
            file=sys.stderr,
        )
    text = render_predictions(table, pred, target)
    if args.output:
        make_parent(args.output)
        atomic_write_text(args.output, text)
        print(f"wrote {len(pred)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
