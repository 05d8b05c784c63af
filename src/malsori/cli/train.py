"""``malsori train regression DATA.csv --target COL``: the five-step recipe on a CSV.

Runs under ``torchrun --nproc-per-node N -m malsori.cli train regression ...`` as well
(data-parallel; only rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._extras import require_extra


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train models in PyTorch (needs the train extra)")
    recipes = p.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    r = recipes.add_parser(
        "regression",
        help="MLP or linear regression with MSE loss on a CSV",
        description="Train an MLP (or, with --hidden '', a linear model) with MSE loss on a "
        "CSV file; prints validation RMSE/MAE/R2 and saves a model directory.",
    )
    r.add_argument("data", metavar="DATA.csv")
    r.add_argument("--target", required=True, help="the column to predict")
    r.add_argument("--features", default=None, help="comma list [default: every other column]")
    r.add_argument("--hidden", default="64,64", help="hidden layer sizes; '' = linear [64,64]")
    r.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    r.add_argument("--lr", type=float, default=1e-2, help="learning rate [0.01]")
    r.add_argument("--epochs", type=int, default=200)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--valid-fraction", type=float, default=0.2)
    r.add_argument(
        "--patience",
        type=int,
        default=20,
        help="early stopping patience in epochs; 0 disables [20]",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto, cpu or cuda [auto]")
    r.add_argument("--workers", type=int, default=0, help="DataLoader worker processes [0]")
    r.add_argument(
        "--output",
        default="regression-model",
        metavar="DIR",
        help="model directory [regression-model]",
    )
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=run_regression)


def run_regression(args: argparse.Namespace) -> int:
    require_extra("train", "'malsori train'", ("torch",))
    from ..train.distributed import DistributedContext
    from ..train.regression import train_regression

    result = train_regression(
        args.data,
        target=args.target,
        features=[f.strip() for f in args.features.split(",")] if args.features else None,
        hidden=args.hidden,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        valid_fraction=args.valid_fraction,
        patience=args.patience or None,
        seed=args.seed,
        output_dir=args.output,
        device=args.device,
        num_workers=args.workers,
        progress=not args.quiet,
    )
    if DistributedContext.from_env().is_main:
        m, h = result.metrics, result.history
        early = ", stopped early" if h.stopped_early else ""
        print(f"epochs: {len(h.epochs)} (best {h.best_epoch}{early}) on {result.device}")
        print(f"validation RMSE {m['rmse']:.4g}  MAE {m['mae']:.4g}  R2 {m['r2']:.4f}")
        print(f"saved model to {result.output_dir}")
    return 0
