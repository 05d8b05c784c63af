"""Overhead of ``malsori.train.fit`` against a bare hand-written loop, same model and data.

    .venv/bin/python benchmarks/fit_overhead.py [--samples 100000] [--epochs 3] [--repeat 3]

Both train the same MLP with Adam and MSE, without a validation split (the bare loop has
none), over the same DataLoader settings; the order alternates and the best of --repeat
runs counts. ``fit`` is timed with and without its progress bar.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, markdown_table
from malsori.train import fit
from malsori.train.regression import MLP


def bare_loop(x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> float:
    torch.manual_seed(0)
    model = MLP(x.shape[1], [128, 128])
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
    return time.perf_counter() - t0


def with_fit(x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, progress: bool) -> float:
    torch.manual_seed(0)
    model = MLP(x.shape[1], [128, 128])
    t0 = time.perf_counter()
    fit(
        model,
        (x, y),
        loss_fn=nn.MSELoss(),
        optimizer="adam",
        lr=1e-3,
        epochs=epochs,
        batch_size=batch,
        valid_fraction=0,
        progress=progress,
        device="cpu",
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, args.features, generator=g)
    y = x[:, :4].sin().sum(1, keepdim=True) + 0.1 * torch.randn(args.samples, 1, generator=g)
    runs: dict[str, list[float]] = {
        "bare loop": [],
        "fit (progress off)": [],
        "fit (progress on)": [],
    }
    for _ in range(args.repeat):
        runs["bare loop"].append(bare_loop(x, y, args.epochs, args.batch_size))
        runs["fit (progress off)"].append(with_fit(x, y, args.epochs, args.batch_size, False))
        runs["fit (progress on)"].append(with_fit(x, y, args.epochs, args.batch_size, True))
    n = args.samples * args.epochs
    base = min(runs["bare loop"])
    rows = [
        [name, f"{min(t):.2f}", f"{n / min(t):,.0f}", f"{(min(t) / base - 1) * 100:+.1f}%"]
        for name, t in runs.items()
    ]
    table = markdown_table(["loop", "best time s", "samples/s", "overhead vs bare"], rows)
    cmd = "python benchmarks/fit_overhead.py " + " ".join(sys.argv[1:])
    report = (
        f"MLP {args.features}-128-128-1, Adam, batch {args.batch_size}, {args.samples} samples x "
        f"{args.epochs} epochs, best of {args.repeat}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.\nMachine: {machine()}\n"
        f"Command: `{cmd.strip()}`\n\n{table}\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fit_overhead.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
