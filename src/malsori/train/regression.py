"""The regression recipe: CSV -> standardized tensors -> MLP (or linear) -> MSE -> saved model.

Each of the five steps is marked where it happens. The model directory holds ``model.pt``
(the state dict), ``config.json`` (columns, layer sizes, standardization, metrics) and the
training history (CSV, JSON, loss.png).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .._atomic import atomic_write_many, output_error
from .._dirlock import hold_folder
from .._tables import csv_text
from ..errors import DataError, OptionsError, OutputError, TrainingError
from .distributed import DistributedContext
from .history import History
from .loop import fit, resolve_device

FloatArray = npt.NDArray[np.float32]
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: What a model directory holds; a rerun into it replaces these and nothing else.
MODEL_FILES: tuple[str, ...] = (
    "model.pt",
    "config.json",
    "history.json",
    "history.csv",
    "loss.png",
)

__all__ = [
    "MLP",
    "DataError",  # defined in malsori.errors; imported from here before
    "RegressionResult",
    "Standardizer",
    "Table",
    "column_matrix",
    "linear_coefficients",
    "load_regression",
    "parse_hidden",
    "predict_csv",
    "read_table",
    "regression_metrics",
    "render_predictions",
    "train_regression",
]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]  # raw cells, one list per data row
    path: str


def read_table(path: str | Path) -> Table:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    with open(p, "rb") as raw:
        head = raw.read(2)
    # Excel's "Unicode text" and PowerShell write UTF-16 with a byte-order mark
    encoding = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        with open(p, newline="", encoding=encoding) as fh:
            first = fh.readline()
            fh.seek(0)
            # Excel's "Unicode text" is tab-separated, European Excel's CSV semicolon-separated
            delimiter = next((d for d in ",\t;" if d in first), ",")
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{p}: the file is empty (a header row is required)")
            rows = [r for r in reader if any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{p}: not a UTF-8 (or UTF-16) text file ({exc.reason}); save the CSV as UTF-8"
        ) from None
    except csv.Error as exc:
        raise DataError(f"{p}: not a CSV file ({exc})") from None
    columns = [h.strip() for h in header]
    if not rows:
        raise DataError(f"{p}: no data rows after the header")
    return Table(columns, rows, str(p))


def column_matrix(table: Table, names: Sequence[str]) -> FloatArray:
    """The named columns as float32, with a clear error for missing columns and bad cells."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise DataError(
            f"{table.path}: column(s) {', '.join(map(repr, missing))} not found; "
            f"columns are: {', '.join(table.columns)}"
        )
    idx = [table.columns.index(n) for n in names]
    out = np.empty((len(table.rows), len(names)), dtype=np.float32)
    for i, row in enumerate(table.rows):
        line = i + 2  # 1-based, after the header
        if len(row) != len(table.columns):
            raise DataError(
                f"{table.path}:{line}: expected {len(table.columns)} fields, got {len(row)}"
            )
        for j, (col, name) in enumerate(zip(idx, names, strict=True)):
            cell = row[col].strip()
            try:
                value = float(cell)
            except ValueError:
                what = "an empty cell" if not cell else f"non-numeric value {cell!r}"
                raise DataError(f"{table.path}:{line}: column {name!r} has {what}") from None
            if not math.isfinite(value):
                raise DataError(
                    f"{table.path}:{line}: column {name!r} is {cell} (NaN/inf not allowed)"
                )
            if abs(value) > _FLOAT32_MAX:
                raise DataError(
                    f"{table.path}:{line}: column {name!r} is {cell}, beyond float32's "
                    "range (3.4e38): rescale the column"
                )
            out[i, j] = value
    return out


def parse_hidden(spec: str | Sequence[int]) -> list[int]:
    """ "64,64" -> [64, 64]; "" -> [] (a linear model)."""
    if not isinstance(spec, str):
        return [int(h) for h in spec]
    try:
        sizes = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise OptionsError(f"--hidden must be comma-separated integers, got {spec!r}") from None
    if any(s < 1 for s in sizes):
        raise OptionsError(f"--hidden sizes must be >= 1, got {spec!r}")
    return sizes


class MLP(nn.Module):
    """Step 3: a model as an nn.Module. Layers in __init__, the computation in forward.

    With no hidden layers it is linear regression: ``y = x @ W.T + b``.
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int] = (64, 64), n_outputs: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


@dataclass
class Standardizer:
    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, x: FloatArray) -> Standardizer:
        wide = x.astype(np.float64)  # float32 overflows squaring values of 1e20
        std = wide.std(axis=0)
        return cls(
            wide.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)
        )

    def apply(self, x: FloatArray) -> FloatArray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def invert(self, x: FloatArray) -> FloatArray:
        return (x * self.std + self.mean).astype(np.float32)


def regression_metrics(y_true: FloatArray, y_pred: FloatArray) -> dict[str, float]:
    y_true, y_pred = y_true.astype(np.float64), y_pred.astype(np.float64)
    err = y_pred - y_true
    ss_res = float((err**2).sum())
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    return {
        "rmse": math.sqrt(float((err**2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
    }


@dataclass
class RegressionResult:
    model: MLP
    metrics: dict[str, float]
    history: History
    output_dir: Path | None
    device: str = "cpu"  # where it was trained: cpu or cuda


def _check_table(
    table: Table,
    target: str,
    features: Sequence[str] | None,
    batch_size: int,
    valid_fraction: float,
) -> list[str]:
    """The feature columns, after refusing a table that cannot be trained on (with the file
    and the reason)."""
    if target not in table.columns:
        raise DataError(
            f"{table.path}: target column {target!r} not found; "
            f"columns are: {', '.join(table.columns)}"
        )
    feats = list(features) if features else [c for c in table.columns if c != target]
    if not feats:
        raise DataError(f"{table.path}: no feature columns besides the target {target!r}")
    if target in feats:
        raise OptionsError(f"the target {target!r} cannot also be a feature")
    n = len(table.rows)
    if n < batch_size:
        raise DataError(
            f"{table.path}: {n} data rows are fewer than the batch size {batch_size}; "
            "add rows or lower --batch-size"
        )
    n_valid = round(n * valid_fraction)
    if not 0 < valid_fraction < 1 or n_valid < 1 or n - n_valid < 1:
        raise DataError(
            f"{table.path}: {n} rows cannot be split {valid_fraction:.0%} for validation"
        )
    return feats


def train_regression(
    csv_path: str | Path,
    *,
    target: str,
    features: Sequence[str] | None = None,
    hidden: str | Sequence[int] = (64, 64),
    optimizer: str = "adam",
    lr: float = 1e-2,
    epochs: int = 200,
    batch_size: int = 32,
    valid_fraction: float = 0.2,
    patience: int | None = 20,
    seed: int = 0,
    output_dir: str | Path | None = None,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> RegressionResult:
    """Train an MLP (or linear model) with MSE on a CSV; save it to ``output_dir``."""
    if not (math.isfinite(lr) and lr > 0):
        raise OptionsError(f"--lr must be a positive number, got {lr}")
    table = read_table(csv_path)
    feats = _check_table(table, target, features, batch_size, valid_fraction)
    sizes = parse_hidden(hidden)
    out = Path(output_dir) if output_dir is not None else None
    n = len(table.rows)
    # Step 1: data as tensors (standardized; the statistics are saved with the model).
    x_raw, y_raw = column_matrix(table, feats), column_matrix(table, [target])
    # The output is checked before training and held until saved (rank 0 alone saves).
    writer = out is not None and DistributedContext.from_env().is_main
    claim = _claim_model_dir(out) if out is not None and writer else contextlib.nullcontext()
    with claim:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        n_valid = round(n * valid_fraction)
        valid_idx, train_idx = perm[:n_valid], perm[n_valid:]
        x_std, y_std = Standardizer.fit(x_raw[train_idx]), Standardizer.fit(y_raw[train_idx])
        x, y = torch.from_numpy(x_std.apply(x_raw)), torch.from_numpy(y_std.apply(y_raw))

        # Step 2: TensorDataset (the DataLoader is built by fit with batch_size/shuffle/workers).
        train_set = TensorDataset(x[train_idx], y[train_idx])
        valid_set = TensorDataset(x[valid_idx], y[valid_idx])

        dev = resolve_device(device)  # auto: CUDA when torch sees it, else the CPU

        # Step 3: the model.  Step 4: the loss.
        torch.manual_seed(seed)
        model = MLP(len(feats), sizes)
        loss_fn = nn.MSELoss()

        # Step 5: the optimizer and the loop (inside fit).
        history = fit(
            model,
            train_set,
            valid_data=valid_set,
            loss_fn=loss_fn,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            early_stopping_patience=patience,
            seed=seed,
            device=dev,
            num_workers=num_workers,
            progress=progress,
        )

        model.eval().cpu()
        with torch.no_grad():
            pred = y_std.invert(model(x[valid_idx]).numpy())
        metrics = regression_metrics(y_raw[valid_idx], pred)
        # (R2 is NaN by itself when the validation targets are all equal: not a divergence)
        if not all(math.isfinite(metrics[k]) for k in ("rmse", "mae")) or not all(
            bool(torch.isfinite(p).all()) for p in model.parameters()
        ):
            raise TrainingError(
                "training diverged (the loss or the weights are NaN or infinite): lower --lr, "
                "or rescale columns with very large values; nothing was saved"
            )

        if out is not None and writer:
            config = {
                "kind": "malsori.regression",
                "features": feats,
                "target": target,
                "hidden": sizes,
                "x_mean": x_std.mean.tolist(),
                "x_std": x_std.std.tolist(),
                "y_mean": y_std.mean.tolist(),
                "y_std": y_std.std.tolist(),
                "metrics": {k: v if math.isfinite(v) else None for k, v in metrics.items()},
                "optimizer": optimizer,
                "lr": lr,
                "batch_size": batch_size,
                "epochs_run": len(history.epochs),
                "best_epoch": history.best_epoch,
                "seed": seed,
                "device": dev.type,
            }
            _save(out, model, config, history)
        return RegressionResult(model, metrics, history, out, dev.type)


@contextlib.contextmanager
def _claim_model_dir(out: Path) -> Iterator[None]:
    """Check ``out`` before training and hold it until the model is saved: a new or empty
    folder, or one with a model this recipe saved (its files are replaced, others kept).
    A folder with other files (a Whisper model, a project's own config.json) was written
    over; two runs into one folder both said "saved". An exclusive lock on the folder
    refuses the second run at once."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--output {out} is a file; give a folder for the model")
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir() if not _ignorable(p.name))
        if names and not _is_regression_dir(out):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise OutputError(
                f"{out} holds files that are not a model of 'malsori train regression' "
                f"({shown}); choose a new or empty --output folder"
            )
    with hold_folder(
        out,
        f"another 'malsori train' run is saving into {out}; wait for it, or choose "
        "another --output",
    ):
        for leftover in out.glob(".*.*"):  # a save killed midway; the folder is held
            if leftover.name != ".DS_Store" and _ignorable(leftover.name):
                leftover.unlink(missing_ok=True)
        try:  # a folder that cannot be written is found now, not after the training
            fd, probe = tempfile.mkstemp(prefix=".malsori-probe.", dir=out)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise output_error(exc, out) from exc
        yield


def _ignorable(name: str) -> bool:
    """A Finder's .DS_Store, or a temporary file of an interrupted save of this recipe."""
    if name == ".DS_Store":
        return True
    return name.endswith((".tmp", ".old")) and any(name.startswith(f".{f}.") for f in MODEL_FILES)


def _is_regression_dir(out: Path) -> bool:
    try:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("kind") == "malsori.regression"


def _save(out: Path, model: MLP, config: dict[str, Any], history: History) -> None:
    """The model directory: model.pt (state dict), config.json and the history files, all
    written or none (a full disk keeps the previous model whole)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    weights = buf.getvalue()
    # config.json names the weights it goes with: a save killed between its renames (new
    # model.pt, old config.json) is then told apart from a model, even when the shapes match
    config = {**config, "model_sha256": hashlib.sha256(weights).hexdigest()}
    try:
        config_text = json.dumps(config, indent=2, allow_nan=False)
    except ValueError:  # a statistic overflowed: no model that predict could use
        raise TrainingError(
            "a column's values are too large to standardize in float32; rescale them; "
            "nothing was saved"
        ) from None
    files: list[tuple[Path, str | bytes]] = [  # config.json renamed first: a save killed
        # between the renames over a model saved before the checksum (none in its config)
        # leaves the new config with the old weights, which predict refuses
        (out / "config.json", config_text),
        (out / "model.pt", weights),
        *((out / name, content) for name, content in history.files()),
    ]
    atomic_write_many(files)


def load_regression(directory: str | Path) -> tuple[MLP, dict[str, Any]]:
    d = Path(directory)
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{d}: not a malsori regression model directory ({exc})") from exc
    if config.get("kind") != "malsori.regression":
        raise DataError(f"{d}: not a malsori regression model directory")
    try:
        weights = (d / "model.pt").read_bytes()
        expected = config.get("model_sha256")  # absent in models saved before it was added
        if expected is not None and hashlib.sha256(weights).hexdigest() != expected:
            raise DataError(
                f"{d}: the model is damaged or incomplete: model.pt is not the one "
                "config.json was saved with (a save was interrupted, the file was cut short, "
                "or the files come from two runs); train it again"
            )
        model = MLP(len(config["features"]), config["hidden"])
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        for key in ("target", "x_mean", "x_std", "y_mean", "y_std"):
            config[key]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{d}: the model is damaged or incomplete ({type(exc).__name__}: {first}); "
            "train it again"
        ) from None
    return model.eval(), config


def linear_coefficients(model: MLP, config: dict[str, Any]) -> tuple[FloatArray, float]:
    """For a linear model (no hidden layers): coefficients and intercept in the CSV's units."""
    if config["hidden"]:
        raise OptionsError("coefficients exist only for a linear model (--hidden '')")
    layer = model.net[0]
    assert isinstance(layer, nn.Linear)
    w = layer.weight.detach().numpy()[0]
    b = float(layer.bias.detach().numpy()[0])
    x_mean, x_std = np.array(config["x_mean"]), np.array(config["x_std"])
    y_mean, y_std = float(config["y_mean"][0]), float(config["y_std"][0])
    coef = (w * y_std / x_std).astype(np.float32)
    intercept = y_mean + y_std * b - float((coef * x_mean).sum())
    return coef, intercept


def predict_csv(model_dir: str | Path, csv_path: str | Path) -> tuple[Table, FloatArray, str]:
    """Predictions for every row of ``csv_path``; returns (table, predictions, target name)."""
    model, config = load_regression(model_dir)
    table = read_table(csv_path)
    x = column_matrix(table, config["features"])
    xs = Standardizer(np.array(config["x_mean"], np.float32), np.array(config["x_std"], np.float32))
    ys = Standardizer(np.array(config["y_mean"], np.float32), np.array(config["y_std"], np.float32))
    with torch.no_grad():
        pred = ys.invert(model(torch.from_numpy(xs.apply(x))).numpy())
    return table, pred[:, 0], str(config["target"])


def render_predictions(table: Table, pred: FloatArray, target: str) -> str:
    """The input CSV with a ``predicted_TARGET`` column added (its values replaced when the
    input has one already: a file predict wrote, given to it again)."""
    name = f"predicted_{target}"
    at = table.columns.index(name) if name in table.columns else len(table.columns)
    columns = [*table.columns[:at], name, *table.columns[at + 1 :]]
    rows = (
        [*row[:at], f"{float(value):.6g}", *row[at + 1 :]]
        for row, value in zip(table.rows, pred, strict=True)
    )
    return csv_text(columns, rows)
